#!/usr/bin/env bash
# Sets up a fresh machine (scripts/setup.sh: a virtual environment in .venv), then runs every test:
# C++ (ctest, and the find_package / add_subdirectory consumers) and Python (pytest).
# torch 2.13.0 (CPU), scikit-learn and threadpoolctl are installed as test references only (expecttest:
# torch.testing._internal, whose optimizer inputs tests/test_torch_optim_db.py reuses).
# Environment: PYTHON, DLOPT_VENV, DLOPT_CUDA as for scripts/setup.sh; DLOPT_CPP_TESTS_CUDA=AUTO|ON|OFF for
# the C++ test build (default AUTO; CI passes ON so the CUDA kernels are compiled even without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${DLOPT_VENV:-.venv}
bash scripts/setup.sh "pytest>=7" "scikit-learn>=1.3" "threadpoolctl>=3" "hypothesis>=6" "torch==2.13.0" "expecttest"
VPY="$VENV/bin/python"

echo "== C++ tests (build/cpp-tests, DLOPT_CUDA=${DLOPT_CPP_TESTS_CUDA:-AUTO})"
GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)
cmake -S . -B build/cpp-tests "${GEN[@]}" -DDLOPT_BUILD_PYTHON=OFF -DBUILD_TESTING=ON \
  -DDLOPT_CUDA="${DLOPT_CPP_TESTS_CUDA:-AUTO}" >/dev/null
cmake --build build/cpp-tests
ctest --test-dir build/cpp-tests --output-on-failure

echo "== C++ embedding: cmake --install, find_package(dlopt) and add_subdirectory"
DLOPT_BUILD_DIR=build/cpp-tests bash tests/cpp/test_install.sh

echo "== Python tests ($VPY -m pytest)"
"$VPY" -m pytest -q
