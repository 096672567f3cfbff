#!/usr/bin/env bash
# Installs what actx needs on a fresh Debian 12 machine: system packages from Debian's archive, and
# a Python virtual environment (.venv) with the packages of the lock file requirements.txt. Safe to
# rerun: what is already there is neither downloaded nor installed again.
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
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
# pip leaves requirements that are already satisfied alone (no multi-GB torch download on reruns).
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
