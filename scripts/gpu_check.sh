#!/usr/bin/env bash
# On a GPU machine with torch (2.11+cu130) and nvcc already installed and no network: build the
# extension in place, run the CUDA tests (kernels, then the compiler/export paths), then the CUDA
# benchmark, and print its table last.
# Usage: bash scripts/gpu_check.sh [python]   (default: python3)
# ACTX_CPU_BENCH=1 adds the CPU benchmark on two of this machine's cores (a few minutes more): GPU
# hosts have AVX-512, which the development VM lacks. ACTX_COMPILE_BENCH=1 adds the torch.compile
# benchmark on CUDA (Triton), PReLU models only (several minutes).
# The build needs nlohmann/json.hpp, which the offline GPU machine lacks: on the development machine
#   mkdir -p .deps && (cd .deps && apt-get download nlohmann-json3-dev)
# and carry .deps (ignored by git) to the GPU machine; this script unpacks it.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-python3}
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# The benchmarks import the library built in place here.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
nvcc --version | tail -1

if ! echo '#include <nlohmann/json.hpp>' | g++ -x c++ -fsyntax-only - 2> /dev/null; then
  for deb in .deps/nlohmann-json3-dev*.deb; do
    [ -f "$deb" ] && dpkg -x "$deb" .deps/root && export CPLUS_INCLUDE_PATH="$PWD/.deps/root/usr/include${CPLUS_INCLUDE_PATH:+:$CPLUS_INCLUDE_PATH}"
  done
fi

echo "== build (sm_90 only: the machine's own architecture)"
start=$(date +%s)
ACTX_CUDA_ARCH_FLAGS="-gencode=arch=compute_90,code=sm_90" \
  "$PYTHON" setup.py --quiet build_ext --inplace > "$OUT/build.log" 2>&1 \
  || { tail -40 "$OUT/build.log"; exit 1; }
echo "built in $(( $(date +%s) - start )) s"

echo "== CUDA tests"
"$PYTHON" -m pip --version > /dev/null 2>&1 || true
"$PYTHON" -c "import pytest" 2>/dev/null || { echo "pytest missing"; exit 1; }
"$PYTHON" -m pytest -q -p no:cacheprovider tests/python/test_cuda.py -m "slow or not slow" 2>&1 | tail -15
tests_rc=${PIPESTATUS[0]}

echo "== CUDA sign masks and parity bits (what the backward keeps)"
"$PYTHON" -m pytest -q -p no:cacheprovider tests/python/test_masks.py tests/python/test_parity.py -k cuda 2>&1 | tail -6
tests_rc=$(( tests_rc | PIPESTATUS[0] ))

echo "== torch.compile (Inductor with Triton), torch.export and autocast on CUDA"
"$PYTHON" -m pytest -q -p no:cacheprovider tests/python/test_ecosystem.py tests/python/test_compile.py -k cuda 2>&1 | tail -8
tests_rc=$(( tests_rc | PIPESTATUS[0] ))

if [ "${ACTX_COMPILE_BENCH:-0}" = 1 ]; then
  echo "== torch.compile benchmark on CUDA"
  "$PYTHON" benchmarks/benchmark_compile.py --device cuda --repeats 7 --only PReLU --out "$OUT" \
    > "$OUT/compile_bench.log" 2>&1 || echo "compile benchmark failed: rc=$?"
  sed -n '/^| model/,$p' "$OUT/compile_bench.log"
fi

if [ "${ACTX_CPU_BENCH:-0}" = 1 ]; then
  echo "== CPU benchmark on 2 cores:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
  grep -o -w -m1 -E 'avx512(f|bw|_bf16)' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
  pin=""
  command -v taskset > /dev/null && pin="taskset -c 0,1"
  $pin "$PYTHON" benchmarks/benchmark.py --threads 1,2 --repeats 5 --seconds 0.02 --out "$OUT/cpu" \
    > "$OUT/cpu_bench.log" 2>&1 || echo "CPU benchmark failed: rc=$?"
  sed -n '1p;/^| case/,$p' "$OUT/cpu_bench.log"
fi

echo "== training memory on CUDA (saved bytes, peak allocation, step time)"
"$PYTHON" benchmarks/benchmark_memory.py --device cuda --repeats 9 --out "$OUT" > "$OUT/memory_bench.log" 2>&1 \
  || echo "memory benchmark failed: rc=$?"
sed -n '/^| activation/,$p' "$OUT/memory_bench.log"

echo "== CUDA benchmark"
"$PYTHON" benchmarks/benchmark.py --device cuda --repeats 5 --seconds 0.02 --out "$OUT" > "$OUT/bench.log" 2>&1
bench_rc=$?
# Every case's line, then the two tables (wall time through autograd; GPU time of the operators).
grep -v "^|" "$OUT/bench.log" | sed -n '1,/^$/p'
sed -n '/^| case/,$p' "$OUT/bench.log"
echo "tests rc=$tests_rc bench rc=$bench_rc"
exit $(( tests_rc | bench_rc ))
