#!/usr/bin/env bash
# A portable build runs on any x86-64 CPU: the C++ optimizer and linear-model tests run under QEMU's
# user-mode emulator posing as a Nehalem (SSE4.2, no AVX), where the loader must pick the kernels'
# baseline clones (DLOPT_KERNEL, core/device.hpp) and nothing may use an instruction the CPU lacks.
# A build with -march=native fails here with SIGILL on an AVX machine (the check this guards).
# Usage: DLOPT_BUILD_DIR=build/cpp-tests bash tests/cpp/test_portable.sh   (apt-installs qemu-user if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${DLOPT_BUILD_DIR:-build/cpp-tests}

if ! grep -q '^DLOPT_NATIVE:BOOL=OFF' "$BUILD/CMakeCache.txt"; then
  echo "$BUILD is not a portable build (DLOPT_NATIVE=ON): nothing to check"
  exit 0
fi
if [ "$(uname -m)" != x86_64 ]; then
  echo "not an x86-64 machine: nothing to check"
  exit 0
fi
if ! command -v qemu-x86_64 >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "== apt-get install qemu-user"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq qemu-user >/dev/null
fi

# QEMU's emulator notes each CPU feature of the model it does not implement (nothing we use): not shown.
emulate() { qemu-x86_64 -cpu "$@" 2> >(grep -v "TCG doesn't support requested feature" >&2); }

expected=x86-64
# (GCC >= 12 on Linux builds the clones, see cpp/CMakeLists.txt; elsewhere the baseline only)
grep -qs -- '-DDLOPT_DISPATCH' "$BUILD/build.ninja" "$BUILD/cpp/CMakeFiles/dlopt.dir/flags.make" || expected=generic
for t in optim linear; do
  echo "== $BUILD/tests/cpp/dlopt_test_$t under qemu-x86_64 -cpu Nehalem (expects cpu_kernels() = $expected)"
  DLOPT_EXPECT_CPU_KERNELS=$expected OMP_NUM_THREADS=2 emulate Nehalem "$BUILD/tests/cpp/dlopt_test_$t"
done

# The clones change instructions, never results: the same digest of every optimizer's steps on this CPU
# (its best level) and on emulated CPUs that get the baseline (Nehalem) and the AVX2 clones (Haswell).
digest() { OMP_NUM_THREADS=2 "$@" "$BUILD/tests/cpp/dlopt_levels_digest"; }
here=$(digest)
echo "== levels digest: $here (this CPU)"
for cpu in Nehalem Haswell; do
  there=$(digest emulate "$cpu")
  echo "== levels digest: $there (qemu -cpu $cpu)"
  if [ "${there#* }" != "${here#* }" ]; then
    echo "error: the kernels computed different bits on $cpu than on this CPU" >&2
    exit 1
  fi
done
