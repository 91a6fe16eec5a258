#!/usr/bin/env bash
# Sets up a fresh machine (scripts/setup.sh), then runs the optimizer demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
"${PYTHON:-python3}" -m dlopt demo   # the same as the `dlopt demo` console command
