#!/usr/bin/env bash
# `pip wheel .` makes a wheel that installs into a fresh virtual environment and runs there, on this CPU
# and on an emulated pre-AVX one (QEMU user mode posing as a Nehalem; see tests/cpp/test_portable.sh):
# one Adam step against NumPy, and the instruction set the kernels picked.
# Usage: VPY=.venv/bin/python bash tests/test_wheel.sh   (VPY: a Python with scikit-build-core, pybind11;
# the wheel reuses its install's build directory, build/{wheel_tag}, so it is quick after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
VPY=${VPY:-.venv/bin/python}
WHEELS=build/wheelhouse
ENV_DIR=build/wheel-venv

rm -rf "$WHEELS" "$ENV_DIR"
echo "== pip wheel . -w $WHEELS"
"$VPY" -m pip wheel -q --disable-pip-version-check --no-build-isolation --no-deps . -w "$WHEELS"
wheel=$(ls "$WHEELS"/dlopt-*.whl)
echo "== $(basename "$wheel") into a fresh virtual environment ($ENV_DIR)"
"$VPY" -m venv "$ENV_DIR"
"$ENV_DIR/bin/python" -m pip install -q --disable-pip-version-check "$wheel"

smoke='
import os, numpy as np, dlopt
p = np.array([1.0, -2.0, 3.0], dtype=np.float32)
g = np.array([0.5, 0.5, -1.0], dtype=np.float32)
dlopt.Adam([p], lr=0.1).step([g])
expected = np.array([1.0, -2.0, 3.0], dtype=np.float32) - np.float32(0.1) * np.sign(g)  # first Adam step
assert np.allclose(p, expected, rtol=0, atol=1e-6), p
want = os.environ.get("DLOPT_EXPECT_CPU_KERNELS")
assert want is None or dlopt.cpu_kernels() == want, (dlopt.cpu_kernels(), want)
print(f"dlopt {dlopt.__version__} from {dlopt.__file__}: Adam step ok, cpu_kernels() = {dlopt.cpu_kernels()}")
'
# From outside the repository, so `import dlopt` finds the installed wheel, not python/dlopt.
ENV_PY="$(pwd)/$ENV_DIR/bin/python"
(cd /tmp && "$ENV_PY" -c "$smoke")
if [ "$(uname -m)" = x86_64 ] && command -v qemu-x86_64 >/dev/null 2>&1; then
  echo "== the same under qemu-x86_64 -cpu Nehalem (no AVX)"
  (cd /tmp && DLOPT_EXPECT_CPU_KERNELS=x86-64 qemu-x86_64 -cpu Nehalem "$ENV_PY" -c "$smoke")
fi
