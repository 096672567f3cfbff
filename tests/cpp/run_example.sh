#!/usr/bin/env bash
# ctest: install actx from the build tree into a scratch prefix, build examples/cpp against the
# installed package with find_package(actx), and run both applications on the models the Python
# side saves (TorchScript and AOTInductor).
# Usage: run_example.sh BUILD_DIR SOURCE_DIR TORCH_CMAKE_PREFIX PYTHON WORK_DIR
set -euo pipefail
build=$1 source=$2 torch_prefix=$3 python=$4 work=$5
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
ACTX_LIBRARY="$(ls "$work"/prefix/lib*/libactx.so | head -1)" "$python" "$source/tests/python/cpp_model.py" "$work/models" \
  > "$work/models.log" 2>&1 || { cat "$work/models.log"; exit 1; }
cmake -S "$source/examples/cpp" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix;$torch_prefix" > "$work/configure.log" 2>&1 || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
"$work/build/actx_example" "$work/models/model.pt"
# actx_deploy names no actx symbol: the library must be linked all the same.
if ! readelf -d "$work/build/actx_deploy" | grep -q "NEEDED.*libactx"; then
  echo "actx_deploy does not link libactx (no NEEDED entry): the operators would not be registered"
  exit 1
fi
"$work/build/actx_deploy" "$work/models/model.pt" "$work/models/model_fused.pt2" "$work/models/model_opaque.pt2"

# Where torch's wheel brings CUDA libraries, the applications load those, not the CUDA toolkit's
# (docs/cuda.md): NCCL and cudart of torch's release.
wheel_libs=$("$python" -c 'import os, torch; print(os.path.realpath(os.path.join(os.path.dirname(torch.__file__), "..", "nvidia")))')
if [ -d "$wheel_libs" ]; then
  for app in actx_example actx_deploy; do
    for lib in libcudart.so libnccl.so; do
      path=$(ldd "$work/build/$app" | awk -v lib="$lib" 'index($1, lib) == 1 { print $3 }')
      if [ -z "$path" ] || [[ "$(realpath "$path")" != "$wheel_libs"/* ]]; then
        echo "$app loads ${path:-no $lib}, not the $lib that torch brings (under $wheel_libs)"
        exit 1
      fi
    done
  done
fi

# Without CMake (a plain compiler command, with the compiler's default --as-needed where it has
# one): including <actx/actx.h> keeps the library linked.
torch_dir=$("$python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
lib_dir=$(dirname "$(ls "$work"/prefix/lib*/libactx.so | head -1)")
"${CXX:-c++}" -std=c++20 -I"$work/prefix/include" -I"$torch_dir/include" "$source/tests/cpp/header_only_app.cpp" \
  -L"$lib_dir" -lactx -L"$torch_dir/lib" -lc10 -ltorch_cpu -Wl,-rpath,"$lib_dir:$torch_dir/lib" -o "$work/header_only_app"
if ! readelf -d "$work/header_only_app" | grep -q "NEEDED.*libactx"; then
  echo "header_only_app includes <actx/actx.h> but does not link libactx (no NEEDED entry)"
  exit 1
fi
"$work/header_only_app"
