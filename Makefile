# make demo   - the main job: LeakyReLU or PReLU? (builds what it needs first)
# make test   - every test: pytest (Python) and ctest (C++ / GoogleTest)
# make bench  - the CPU benchmark against torch's built-ins and the copy roofline
# make test-slow - the tests on tensors of more than 2**31 elements
# make sanitize  - the C++ tests under AddressSanitizer and UndefinedBehaviorSanitizer
# Every target bootstraps the machine (scripts/bootstrap.sh) and is safe to rerun.

PYTHON := .venv/bin/python
BOOTSTRAP_STAMP := .venv/.actx-bootstrapped
CMAKE_BUILD_DIR := build/cmake

.PHONY: all bootstrap build build-cpp test test-python test-cpp test-slow sanitize demo bench bench-kernels clean

all: build

bootstrap: $(BOOTSTRAP_STAMP)

$(BOOTSTRAP_STAMP): requirements.txt scripts/bootstrap.sh
	bash scripts/bootstrap.sh
	touch $@

# The Python library (torch_ext/_C*.so); ninja rebuilds only what changed.
build: bootstrap
	$(PYTHON) setup.py --quiet build_ext --inplace

# The C++ library and the GoogleTest suite, against the torch in .venv.
build-cpp: bootstrap
	mkdir -p build
	cmake -S . -B $(CMAKE_BUILD_DIR) -G Ninja \
	  -DCMAKE_PREFIX_PATH="$$($(PYTHON) -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
	  -DPython3_EXECUTABLE=$(abspath $(PYTHON)) > build/cmake-configure.log 2>&1 \
	  || { cat build/cmake-configure.log; exit 1; }
	cmake --build $(CMAKE_BUILD_DIR)

test-python: build
	$(PYTHON) -m pytest tests/python

test-cpp: build-cpp
	ctest --test-dir $(CMAKE_BUILD_DIR) --output-on-failure

test: test-python test-cpp

# The C++ tests built with AddressSanitizer and UndefinedBehaviorSanitizer (CPU code only).
sanitize: bootstrap
	mkdir -p build
	cmake -S . -B build/sanitize -G Ninja -DACTX_SANITIZE=ON -DACTX_WITH_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_PREFIX_PATH="$$($(PYTHON) -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
	  > build/sanitize-configure.log 2>&1 || { cat build/sanitize-configure.log; exit 1; }
	cmake --build build/sanitize
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir build/sanitize --output-on-failure

# Tensors of more than 2**31 elements (several GB of memory).
test-slow: build
	$(PYTHON) -m pytest tests/python -m slow

demo: build
	$(PYTHON) -m torch_ext.demo

bench: build
	$(PYTHON) -m torch_ext.benchmark

# The raw element loops per instruction set and dtype against memcpy (Google Benchmark).
bench-kernels: build-cpp
	$(CMAKE_BUILD_DIR)/actx_kernels_bench

clean:
	rm -rf build/ torch_ext/_C*.so *.egg-info
