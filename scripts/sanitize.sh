#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer: the C++ tests, and a subset of the Python tests run
# against an extension module built with the same flags. Any report fails the job (UBSan does not
# recover). Expects the virtual environment of scripts/test.sh (DLOPT_VENV, default .venv) with the test
# dependencies; builds into build/sanitize-*, never touching the environment's own dlopt.
# Usage: bash scripts/sanitize.sh          (docs/reliability.md, "Sanitizers")
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${DLOPT_VENV:-.venv}
VPY="$VENV/bin/python"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
# -O1: sanitized code at -O3 takes much longer to compile for little gain in what is found.
OPT="-O1 -g"
GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=abort_on_error=1:detect_stack_use_after_return=0

echo "== C++ tests under ASan+UBSan (build/sanitize-cpp)"
cmake -S . -B build/sanitize-cpp "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="$SAN" \
  -DCMAKE_CXX_FLAGS_RELEASE="$OPT" -DDLOPT_BUILD_PYTHON=OFF -DDLOPT_BUILD_BENCH=OFF -DBUILD_TESTING=ON \
  -DDLOPT_CUDA=OFF -DDLOPT_MPI=OFF >/dev/null
cmake --build build/sanitize-cpp
ctest --test-dir build/sanitize-cpp --output-on-failure

# DLOPT_SANITIZE_PYTHON=0 skips the Python part (e.g. to rerun only the C++ tests).
if [ "${DLOPT_SANITIZE_PYTHON:-1}" = 0 ]; then
  echo "== Python tests under ASan+UBSan: skipped (DLOPT_SANITIZE_PYTHON=0)"
  exit 0
fi
echo "== Python tests under ASan+UBSan (extension in build/sanitize-py/site)"
"$VPY" -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps --upgrade \
  --target build/sanitize-py/site -C build-dir=build/sanitize-py/build -C cmake.define.DLOPT_CUDA=OFF \
  -C cmake.build-type=Release -C "cmake.define.CMAKE_CXX_FLAGS=$SAN" \
  -C "cmake.define.CMAKE_CXX_FLAGS_RELEASE=$OPT" .
# Python itself is not instrumented, so the ASan runtime is preloaded, and with it libstdc++: ASan looks up
# the real __cxa_throw (which it wraps) once, at start-up, and python, a C program, has not loaded
# libstdc++ by then; without it the first C++ exception the extension throws fails ASan's CHECK
# (real___cxa_throw != 0) and aborts the interpreter (docs/reliability.md, "Sanitizers"). The interpreter's
# own allocations are never freed at exit, so leak checking is off. --capture=sys: pytest captures
# Python's output only, so a sanitizer report (written to fd 2 just before the abort) reaches the log.
PRELOAD="$(g++ -print-file-name=libasan.so) $(g++ -print-file-name=libstdc++.so.6)"
SITE=$(cd build/sanitize-py/site && pwd)
# The step, its plans, state and threads; checkpoints; the property tests (optimizers, estimators,
# metrics, schedulers); low precision; bad input; clipping, averaging, metrics, the linear models.
TESTS=(tests/test_step_reliability.py tests/test_properties.py tests/test_properties_api.py
       tests/test_checkpoint.py tests/test_checkpoint_hardening.py tests/test_low_precision.py
       tests/test_bad_input.py tests/test_step_plan.py tests/test_clip.py tests/test_averaging.py
       tests/test_metrics.py tests/test_optim_parity.py tests/test_linear_minibatch_reference.py)
# timeout: a bound on a hang (the subset takes minutes; docs/reliability.md, "Sanitizers").
run_sanitized() {
  PYTHONPATH="$SITE" LD_PRELOAD="$PRELOAD" ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" timeout 2400 "$VPY" "$@"
}
run_sanitized -c 'import dlopt, sys; sys.exit(0 if dlopt.__file__.startswith(sys.argv[1]) else f"dlopt from {dlopt.__file__}")' "$SITE"
run_sanitized -m pytest -q -p no:cacheprovider --capture=sys "${TESTS[@]}"
