# make demo   - the main job: LeakyReLU or PReLU? (builds what it needs first)
# make test   - every test: pytest (Python, against the installed wheel), ctest (C++ / GoogleTest,
#               built with g++ and again with clang++), and the lint checks
# make wheel  - dist/actx-*.whl; make install puts it into .venv
# make bench  - the CPU benchmark against torch's built-ins and each case's floor (x.clone(), torch.add)
# make bench-compile - compiled models (torch.compile) with torch's and actx's activations
# make bench-memory - bytes kept for the backward and step time, torch vs actx (docs/memory.md)
# make bench-bias - bias_leaky_relu against the composition StyleGAN users run, eager and compiled
# make test-slow - the tests on tensors of more than 2**31 elements
# make sanitize  - the C++ tests under AddressSanitizer and UndefinedBehaviorSanitizer
# make lint / make format - ruff and clang-format: check / apply
# make lock    - regenerates the lock files (requirements.txt, requirements/torch-*.txt)
# Every target bootstraps the machine (scripts/bootstrap.sh) and is safe to rerun.
#
# TORCH=<release> builds and tests against another supported torch release (one with a lock file
# requirements/torch-<release>.txt), in its own environment .venv-<release> and build folder
# build/torch-<release>: `make test TORCH=2.11.0`. The default is the release pinned in
# requirements.in (lock: requirements.txt), in .venv and build/.

DEFAULT_TORCH := $(shell sed -n 's/^torch==//p' requirements.in)
TORCH ?= $(DEFAULT_TORCH)
ifeq ($(TORCH),$(DEFAULT_TORCH))
VENV := .venv
LOCK := requirements.txt
BUILD := build
DIST := dist
else
VENV := .venv-$(TORCH)
LOCK := requirements/torch-$(TORCH).txt
BUILD := build/torch-$(TORCH)
DIST := dist/torch-$(TORCH)
# Outside `make lock`, a release needs its lock file.
ifeq ($(wildcard $(LOCK))$(filter lock,$(MAKECMDGOALS)),)
$(error TORCH=$(TORCH): no lock file $(LOCK); supported releases: $(DEFAULT_TORCH) \
  $(patsubst requirements/torch-%.txt,%,$(wildcard requirements/torch-*.txt)); `make lock TORCH=$(TORCH)` writes one)
endif
endif
PYTHON := $(VENV)/bin/python
BOOTSTRAP_STAMP := $(VENV)/.actx-bootstrapped
CMAKE_BUILD_DIR := $(BUILD)/cmake
TORCH_CMAKE_PREFIX = $$($(PYTHON) -c 'import torch; print(torch.utils.cmake_prefix_path)')
# $(call cmake_configure,BUILD_DIR,OPTIONS): a CMake build of actx against the torch in $(VENV),
# configured in BUILD_DIR; its log (BUILD_DIR-configure.log) is printed only when configuring fails.
cmake_configure = mkdir -p $(dir $(1)) && cmake -S . -B $(1) -G Ninja -DCMAKE_PREFIX_PATH="$(TORCH_CMAKE_PREFIX)" \
  $(2) > $(1)-configure.log 2>&1 || { cat $(1)-configure.log; exit 1; }
# The C++ and CUDA files that clang-format keeps in shape.
CPP_FILES = $$(git ls-files 'csrc/*.cpp' 'csrc/*.h' 'csrc/*.cu' 'tests/cpp/*.cpp' 'benchmarks/*.cpp' 'examples/*.cpp')

.PHONY: all bootstrap build build-cpp wheel install test test-python test-inplace test-cpp test-clang \
        test-slow sanitize lint format lock demo bench bench-compile bench-memory bench-bias bench-kernels clean

all: build

bootstrap: $(BOOTSTRAP_STAMP)

$(BOOTSTRAP_STAMP): $(LOCK) requirements/third-party.txt scripts/bootstrap.sh
	ACTX_VENV=$(VENV) ACTX_LOCK=$(LOCK) bash scripts/bootstrap.sh
	touch $@

# The Python library in place (torch_ext/_C*.so), for development; ninja rebuilds only what changed
# (setup.py keeps each torch release's objects apart, and relinks when the release changes).
build: bootstrap
	$(PYTHON) setup.py --quiet build_ext --inplace

# The wheel, built against the torch in $(VENV) (whose build objects it shares with `make build`).
wheel: bootstrap
	rm -f $(DIST)/actx-*.whl
	$(PYTHON) -m pip wheel --quiet --no-build-isolation --no-deps --wheel-dir $(DIST) .

install: wheel
	$(PYTHON) -m pip install --quiet --no-deps --force-reinstall $(DIST)/actx-*.whl

# The C++ library and the GoogleTest suite, against the torch in $(VENV).
build-cpp: bootstrap
	$(call cmake_configure,$(CMAKE_BUILD_DIR),-DPython3_EXECUTABLE=$(abspath $(PYTHON)))
	cmake --build $(CMAKE_BUILD_DIR)

# pytest against the installed wheel, from a folder where the checkout's torch_ext cannot be
# imported (tests/python/conftest.py checks that it was not).
test-python: install
	mkdir -p $(BUILD)/installed-tests
	cd $(BUILD)/installed-tests && ACTX_TEST_INSTALLED=1 $(abspath $(PYTHON)) -m pytest \
	  -c $(CURDIR)/pytest.ini --rootdir $(CURDIR) $(CURDIR)/tests/python

# pytest against the in-place build (development).
test-inplace: build
	$(PYTHON) -m pytest tests/python

test-cpp: build-cpp
	ctest --test-dir $(CMAKE_BUILD_DIR) --output-on-failure

# The C++ library and tests built with clang++ (CPU only), so that it stays buildable by both.
test-clang: bootstrap
	$(call cmake_configure,$(BUILD)/clang,-DCMAKE_CXX_COMPILER=clang++ -DACTX_WITH_CUDA=OFF)
	cmake --build $(BUILD)/clang
	ctest --test-dir $(BUILD)/clang --output-on-failure -E example_app

test: lint test-python test-cpp test-clang

# The C++ tests built with AddressSanitizer and UndefinedBehaviorSanitizer (CPU code only).
sanitize: bootstrap
	$(call cmake_configure,$(BUILD)/sanitize,-DACTX_SANITIZE=ON -DACTX_WITH_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo)
	cmake --build $(BUILD)/sanitize
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(BUILD)/sanitize --output-on-failure

# Tensors of more than 2**31 elements (several GB of memory).
test-slow: build
	$(PYTHON) -m pytest tests/python -m slow

# ruff (lint and format, settings in pyproject.toml) and clang-format (.clang-format).
lint: bootstrap
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	clang-format --dry-run --Werror $(CPP_FILES)

format: bootstrap
	$(PYTHON) -m ruff check --fix .
	$(PYTHON) -m ruff format .
	clang-format -i $(CPP_FILES)

# Regenerates the lock files from requirements.in with pip-tools (in a scratch venv): requirements.txt
# for the default release and every requirements/torch-<release>.txt there is, with torch's pin
# replaced; `make lock TORCH=<release>` writes (or rewrites) that release's alone.
PIP_COMPILE = CUSTOM_COMPILE_COMMAND="make lock" build/pip-tools/bin/pip-compile --quiet --allow-unsafe --no-emit-find-links --strip-extras --upgrade
LOCK_RELEASES = $(if $(filter command line,$(origin TORCH)),$(TORCH),\
  $(DEFAULT_TORCH) $(patsubst requirements/torch-%.txt,%,$(wildcard requirements/torch-*.txt)))
lock:
	python3 -m venv build/pip-tools && build/pip-tools/bin/pip install --quiet pip-tools==7.6.2
	mkdir -p build/lock requirements
	for release in $(LOCK_RELEASES); do \
	  if [ "$$release" = "$(DEFAULT_TORCH)" ]; then \
	    $(PIP_COMPILE) --output-file=requirements.txt requirements.in || exit 1; \
	  else \
	    sed "s/^torch==.*/torch==$$release/" requirements.in > build/lock/torch-$$release.in && \
	    $(PIP_COMPILE) --output-file=requirements/torch-$$release.txt build/lock/torch-$$release.in || exit 1; \
	  fi; \
	done

demo: build
	$(PYTHON) -m torch_ext.demo

# The benchmarks run against the in-place build (the checkout's torch_ext first on the path).
bench: build
	PYTHONPATH=$(CURDIR) $(PYTHON) benchmarks/benchmark.py

bench-compile: build
	PYTHONPATH=$(CURDIR) $(PYTHON) benchmarks/benchmark_compile.py

bench-memory: build
	PYTHONPATH=$(CURDIR) $(PYTHON) benchmarks/benchmark_memory.py --compile

bench-bias: build
	PYTHONPATH=$(CURDIR) $(PYTHON) benchmarks/benchmark_bias.py --compile

# The raw element loops per instruction set and dtype against memcpy (Google Benchmark).
bench-kernels: build-cpp
	$(CMAKE_BUILD_DIR)/actx_kernels_bench

clean:
	rm -rf build/ dist/ torch_ext/_C*.so torch_ext/_build_info.py *.egg-info
