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

# The clones change instructions, never results: the same digest of every optimizer's steps and the
# linear models' kernel fits on this CPU (its best level) and on emulated CPUs that get the baseline
# (Nehalem) and the AVX2 clones (Haswell). The closed form is the exception (its XᵀX is Eigen's GEMM
# compiled per level, models/gram_rows.hpp: FMA and SIMD widths change its roundings): its coefficients
# must agree to a tolerance, 1e-5 for float32 (the solve is in double; rounding to float may differ by
# an ulp) and 1e-10 for float64 (the fixture's XᵀX is well conditioned; levels differ by ~1e-15),
# relative to max(1, |value|).
digest() { OMP_NUM_THREADS=2 "$@" "$BUILD/tests/cpp/dlopt_levels_digest"; }
same_closed_form() {
  awk 'NR == FNR { for (i = 2; i <= NF; ++i) want[$1, i] = $i; fields[$1] = NF; next }
       { if (fields[$1] != NF) { print "error: " $1 ": " NF " fields, expected " fields[$1]; bad = 1; next }
         tol = ($1 ~ /\/4$/) ? 1e-5 : 1e-10
         for (i = 2; i <= NF; ++i) {
           a = want[$1, i] + 0; b = $i + 0; d = a - b; d = d < 0 ? -d : d; s = a < 0 ? -a : a
           if (d > tol * (s > 1 ? s : 1)) {
             printf "error: %s value %d: %.17g emulated, %.17g on this CPU\n", $1, i - 1, b, a; bad = 1 } }
         }
       END { exit bad }' <(printf '%s\n' "$1" | grep '^closed_form/') <(printf '%s\n' "$2" | grep '^closed_form/')
}
here=$(digest)
echo "== levels digest: $(head -1 <<<"$here") (this CPU)"
for cpu in Nehalem Haswell; do
  there=$(digest emulate "$cpu")
  echo "== levels digest: $(head -1 <<<"$there") (qemu -cpu $cpu)"
  if [ "$(head -1 <<<"$there" | cut -d' ' -f2)" != "$(head -1 <<<"$here" | cut -d' ' -f2)" ]; then
    echo "error: the kernels computed different bits on $cpu than on this CPU" >&2
    exit 1
  fi
  if ! same_closed_form "$here" "$there" >&2; then
    echo "error: the closed form on $cpu differs from this CPU's beyond rounding" >&2
    exit 1
  fi
done

# The closed form's per-level copies (models/gram_rows_v3.cpp, _v4.cpp) may define no symbol outside
# their renamed Eigen and their own namespace: any other (a libstdc++ template, say) could be the one
# copy the linker keeps for baseline callers too.
objects=$(find "$BUILD/cpp" -name 'gram_rows_v[34].cpp.o')
for o in $objects; do
  stray=$(nm -C --defined-only "$o" | awk '$2 ~ /^[TWVuiDBR]$/' | grep -v -e 'dlopt_eigen_x86_64_v[34]::' \
    -e 'dlopt::detail::gram_x86_64_v[34]::' -e 'DW.ref.__gxx_personality_v0' || true)
  if [ -n "$stray" ]; then
    echo "error: $o defines symbols outside its level's namespaces:" >&2
    echo "$stray" >&2
    exit 1
  fi
done
[ -n "$objects" ] && echo "== the closed form's per-level objects define only their own symbols"
exit 0
