#!/usr/bin/env bash
# Installs what dlopt needs on a fresh Debian/Ubuntu machine, then builds and installs dlopt into a virtual
# environment — never into the system Python, so externally managed Pythons (Debian 12, Ubuntu 24.04) work.
#
# Usage: bash scripts/setup.sh [extra pip requirement ...]
# Environment:
#   PYTHON      the interpreter that creates the environment (default: python3)
#   DLOPT_VENV  where the environment goes (default: .venv in the repository; reused when it exists)
#   DLOPT_CUDA  AUTO (default: CUDA kernels only if nvcc is found and a GPU is visible), ON or OFF
#   DLOPT_ONEDNN  AUTO (default: install libdnnl-dev where apt has it, use it when found), ON or OFF
# Afterwards: source .venv/bin/activate   (or run .venv/bin/python, .venv/bin/dlopt directly)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${DLOPT_VENV:-.venv}
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

apt_install() {
  echo "== apt-get install $*"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

if ! dpkg -s libeigen3-dev >/dev/null 2>&1 || ! command -v cmake >/dev/null 2>&1 || ! command -v g++ >/dev/null 2>&1; then
  echo "== installing Eigen and the C++ toolchain (needed to compile dlopt)"
  apt_install libeigen3-dev g++ cmake ninja-build
fi

# Optional: oneDNN's bfloat16 matmul for Muon(ns_dtype="bfloat16") (CMake's DLOPT_ONEDNN=AUTO finds it). Where apt
# has no libdnnl-dev (older distributions) dlopt builds without it; DLOPT_ONEDNN=OFF skips it.
if [ "${DLOPT_ONEDNN:-AUTO}" != OFF ] && command -v apt-get >/dev/null 2>&1 && ! dpkg -s libdnnl-dev >/dev/null 2>&1 \
   && apt-cache show libdnnl-dev >/dev/null 2>&1; then
  echo "== installing oneDNN (libdnnl-dev: Muon's bfloat16 products)"
  apt_install libdnnl-dev || echo "== libdnnl-dev could not be installed: building without oneDNN"
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "error: PYTHON=$PYTHON: no such interpreter" >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating the virtual environment $VENV with $PYTHON ($("$PYTHON" --version 2>&1))"
  if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
    # Debian/Ubuntu ship venv and ensurepip in a separate package (python3-venv / python3.X-venv).
    rm -rf "$VENV"
    version=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    echo "== $PYTHON cannot create a virtual environment: installing python$version-venv"
    apt_install "python$version-venv"
    "$PYTHON" -m venv "$VENV"
  fi
else
  echo "== using the existing virtual environment $VENV"
fi
VPY="$VENV/bin/python"

echo "== installing the build tools and runtime dependencies into $VENV (pip)"
"$VPY" -m pip install -q --disable-pip-version-check --upgrade pip
"$VPY" -m pip install -q --disable-pip-version-check "scikit-build-core>=0.10" "pybind11>=2.12" \
  "numpy>=1.23" "ml_dtypes>=0.4" "$@"

echo "== building and installing dlopt into $VENV (DLOPT_CUDA=${DLOPT_CUDA:-AUTO}; build files in build/)"
"$VPY" -m pip install -q --disable-pip-version-check --no-build-isolation .
"$VPY" -c 'import dlopt, dlopt.cuda as c; print(f"== installed dlopt {dlopt.__version__} (CUDA kernels built: {c.is_built()}, threads: {dlopt.get_num_threads()})")'
echo "== done: run 'source $VENV/bin/activate', then 'dlopt demo' or 'python -c \"import dlopt\"'"
