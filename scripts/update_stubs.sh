#!/usr/bin/env bash
# Regenerates python/dlopt/_core.pyi, the type stub of the compiled module, with pybind11-stubgen from the
# dlopt installed in the active Python (run it after changing python/bindings/; tests/test_packaging.py
# fails while the stub and the module disagree).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
"$PYTHON" -m pip install -q "pybind11-stubgen>=2.5"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$PYTHON" -m pybind11_stubgen dlopt._core -o "$out" --numpy-array-use-type-var
cp "$out/dlopt/_core.pyi" python/dlopt/_core.pyi
echo "wrote python/dlopt/_core.pyi"
