#!/usr/bin/env bash
# Installs what actx needs on a fresh Debian 12 machine: system packages from Debian's archive, and
# a Python virtual environment with the packages of a lock file: .venv with requirements.txt (the
# default torch release), or the ones named by ACTX_VENV and ACTX_LOCK (the Makefile's TORCH=<release>:
# .venv-<release> with requirements/torch-<release>.txt). Safe to rerun: what is already there is
# neither downloaded nor installed again.
# clang and libomp-dev: the C++ build is also tested with Clang (make test-clang); clang-format: make lint.
set -euo pipefail
cd "$(dirname "$0")/.."

SYSTEM_PACKAGES=(g++ make cmake ninja-build libgtest-dev libbenchmark-dev libsimde-dev nlohmann-json3-dev python3-venv
                 clang libomp-dev clang-format git)
missing=()
for package in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]} from Debian's archive"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PYTHON=${PYTHON:-python3}
VENV=${ACTX_VENV:-.venv}
LOCK=${ACTX_LOCK:-requirements.txt}
if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
# pip leaves requirements that are already satisfied alone (no multi-GB torch download on reruns).
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$LOCK"
# Test-only packages, without their dependencies (requirements/third-party.txt says why).
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  -r requirements/third-party.txt
