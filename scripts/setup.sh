#!/usr/bin/env bash
# Installs what dlopt needs on a fresh Debian/Ubuntu machine, then builds and installs dlopt.
# Usage: bash scripts/setup.sh [extra pip requirement ...]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}

if ! dpkg -s libeigen3-dev >/dev/null 2>&1 || ! command -v cmake >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "== installing Eigen and the C++ toolchain (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libeigen3-dev g++ cmake ninja-build >/dev/null
fi

echo "== installing the build tools and runtime dependencies (pip)"
"$PYTHON" -m pip install -q --disable-pip-version-check "scikit-build-core>=0.10" "pybind11>=2.12" "numpy>=1.23" "$@"

echo "== building and installing dlopt"
"$PYTHON" -m pip install -q --disable-pip-version-check --no-build-isolation .
