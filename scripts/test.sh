#!/usr/bin/env bash
# Sets up a fresh machine (scripts/setup.sh), then runs every test: C++ (ctest) and Python (pytest).
# torch 2.13.0 (CPU) and scikit-learn are installed as test references only.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
bash scripts/setup.sh "pytest>=7" "scikit-learn>=1.3" "torch==2.13.0"

echo "== C++ tests"
cmake -S . -B build/cpp-tests -G Ninja -DDLOPT_BUILD_PYTHON=OFF -DBUILD_TESTING=ON >/dev/null
cmake --build build/cpp-tests
ctest --test-dir build/cpp-tests --output-on-failure

echo "== C++ embedding: cmake --install, find_package(dlopt) and add_subdirectory"
DLOPT_BUILD_DIR=build/cpp-tests bash tests/cpp/test_install.sh

echo "== Python tests"
"$PYTHON" -m pytest -q
