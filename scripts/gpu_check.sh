#!/usr/bin/env bash
# The GPU check of issue 5, in one script: build dlopt with CUDA (C++ and Python), run the C++ and
# Python GPU tests, then the benchmark (Adam float32, 100M parameters, vs a device copy and torch's
# fused CUDA Adam when a CUDA build of torch is installed). Logs and bench JSON go to $OUT
# (default build/gpu-check). Sized for well under 10 minutes on an H100 with 16 cores:
# builds ~3-4 min (one architecture), tests ~1 min, benchmarks ~1 min.
#
#   bash scripts/gpu_check.sh            # or: OUT=/some/dir bash scripts/gpu_check.sh
#
# Works on a bare machine: Eigen from third_party/eigen3 when no Eigen3Config.cmake is installed
# (cmake/dependencies.cmake); pybind11 / scikit-build-core / pytest from third_party/wheels when
# present (an offline machine), else from the package index.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build/gpu-check}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
status=0
step() { echo; echo "== $*"; }

if ! command -v nvcc >/dev/null 2>&1; then
  for d in /usr/local/cuda/bin /usr/local/cuda-*/bin; do
    if [ -x "$d/nvcc" ]; then export PATH="$d:$PATH"; break; fi
  done
fi
step "device and toolchain"
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv 2>&1 | tee "$OUT/device.txt"
nvcc --version | tail -2
ARCH=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
ARCH=${ARCH:-90}
echo "CUDA architecture: sm_$ARCH"

step "Python build dependencies"
missing=()
for spec in pybind11:pybind11 scikit_build_core:scikit-build-core numpy:numpy pytest:pytest sklearn:scikit-learn; do
  "$PYTHON" -c "import ${spec%%:*}" 2>/dev/null || missing+=("${spec##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  if [ -d third_party/wheels ]; then
    "$PYTHON" -m pip install -q --no-index --find-links third_party/wheels "${missing[@]}" ||
      "$PYTHON" -m pip install -q "${missing[@]}"
  else
    "$PYTHON" -m pip install -q "${missing[@]}"
  fi
fi
GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)

step "C++ build with CUDA (sm_$ARCH) and ctest"
if cmake -S . -B build/gpu-cpp "${GEN[@]}" -DDLOPT_CUDA=ON -DBUILD_TESTING=ON -DDLOPT_BUILD_PYTHON=OFF \
     -DDLOPT_BUILD_BENCH=OFF -DCMAKE_CUDA_ARCHITECTURES="$ARCH" >"$OUT/cmake.log" 2>&1 &&
   cmake --build build/gpu-cpp >"$OUT/build-cpp.log" 2>&1; then
  timeout 300 ctest --test-dir build/gpu-cpp --output-on-failure 2>&1 | tee "$OUT/ctest.log" | tail -15
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
  build/gpu-cpp/tests/cpp/dlopt_test_cuda | tail -3
  build/gpu-cpp/tests/cpp/dlopt_test_cuda_muon | tail -3
  build/gpu-cpp/tests/cpp/dlopt_test_cuda_linear | tail -3
else
  echo "C++ build FAILED (see $OUT/cmake.log, $OUT/build-cpp.log)"; tail -30 "$OUT/build-cpp.log" "$OUT/cmake.log"; status=1
fi

step "Python build with CUDA (sm_$ARCH)"
if "$PYTHON" -m pip install -q --no-build-isolation -Cbuild-dir=build/gpu-py \
     -Ccmake.define.DLOPT_CUDA=ON -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="$ARCH" . >"$OUT/build-py.log" 2>&1; then
  # Without a usable GPU (e.g. a driver older than nvcc 13 needs) every GPU test would skip: stop here.
  (cd /tmp && "$PYTHON" -c "import dlopt, sys; ok = dlopt.cuda.is_available(); print('dlopt.cuda.is_available():', ok, dlopt.cuda.get_device_name(0) if ok else ''); sys.exit(not ok)") ||
    { echo "FAILED: no usable GPU (driver too old for CUDA 13? see $OUT/device.txt)"; exit 1; }
else
  echo "Python build FAILED"; tail -40 "$OUT/build-py.log"; exit 1
fi

step "Python GPU tests (tests/test_cuda.py, tests/test_cuda_muon.py, tests/test_cuda_low_precision.py, tests/test_cuda_linear.py, tests/test_linear_schedule_free.py)"
timeout 300 "$PYTHON" -m pytest tests/test_cuda.py tests/test_cuda_muon.py tests/test_cuda_low_precision.py tests/test_cuda_linear.py tests/test_linear_schedule_free.py -q -rs 2>&1 | tee "$OUT/pytest-cuda.log" | tail -20
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

step "benchmark: Adam float32, 100M parameters, 1 tensor"
timeout 180 "$PYTHON" bench/bench_cuda.py --json "$OUT/bench-1.json" 2>&1 | tee "$OUT/bench-1.txt" || status=1
step "benchmark: the same parameters in 100 tensors"
timeout 180 "$PYTHON" bench/bench_cuda.py --tensors 100 --json "$OUT/bench-100.json" 2>&1 | tee "$OUT/bench-100.txt" || status=1

step "benchmark: linear-model epochs, 1M x 100 float32, batch 256 and full batch, GPU vs CPU"
timeout 240 "$PYTHON" bench/bench_cuda.py --linear --json "$OUT/bench-linear.json" 2>&1 | tee "$OUT/bench-linear.txt" || status=1

if [ "${GPU_CHECK_ALL_TESTS:-0}" = 1 ]; then
  step "all Python tests"
  timeout 300 "$PYTHON" -m pytest -q 2>&1 | tail -5 | tee "$OUT/pytest-all.log"
fi
echo; echo "gpu_check: $([ $status -eq 0 ] && echo OK || echo FAILED) (logs in $OUT)"
exit $status
