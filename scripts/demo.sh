#!/usr/bin/env bash
# Sets up a fresh machine (scripts/setup.sh: a virtual environment in .venv), then runs the optimizer demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${DLOPT_VENV:-.venv}
echo "== $VENV/bin/dlopt demo"
"$VENV/bin/dlopt" demo   # the same as `python -m dlopt demo` inside the environment
