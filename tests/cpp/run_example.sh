#!/usr/bin/env bash
# ctest: install actx from the build tree into a scratch prefix, build examples/cpp against the
# installed package with find_package(actx), and run it on the model the Python side saves.
# Usage: run_example.sh BUILD_DIR SOURCE_DIR TORCH_CMAKE_PREFIX PYTHON WORK_DIR
set -euo pipefail
build=$1 source=$2 torch_prefix=$3 python=$4 work=$5
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
ACTX_LIBRARY="$(ls "$work"/prefix/lib*/libactx.so | head -1)" "$python" "$source/tests/python/cpp_model.py" "$work/model.pt"
cmake -S "$source/examples/cpp" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix;$torch_prefix" > "$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
"$work/build/actx_example" "$work/model.pt"
