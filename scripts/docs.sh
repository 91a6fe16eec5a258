#!/usr/bin/env bash
# Builds the documentation, warnings as errors:
#   - the Sphinx site (docs/: guides + the Python API reference) -> build/docs/html/index.html
#   - the C++ API reference (Doxygen over cpp/include/dlopt)     -> build/docs/cpp/html/index.html
# Needs dlopt and its docs extra in the environment (pip install 'dlopt[docs]'); installs doxygen with
# apt-get when it is missing (as scripts/setup.sh installs the toolchain).
# Environment: PYTHON (default: .venv/bin/python, or python3 without .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$( [ -x "${DLOPT_VENV:-.venv}/bin/python" ] && echo "${DLOPT_VENV:-.venv}/bin/python" || echo python3)}
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

if ! command -v doxygen >/dev/null 2>&1; then
  echo "== apt-get install doxygen"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq doxygen >/dev/null
fi

echo "== Sphinx: docs -> build/docs/html (warnings are errors)"
"$PYTHON" -m sphinx -W --keep-going -q -b html docs build/docs/html

echo "== Doxygen: cpp/include/dlopt -> build/docs/cpp/html (warnings, undocumented names included, are errors)"
mkdir -p build/docs/cpp
# Every header documents every public name (WARN_IF_UNDOCUMENTED): an undocumented one is an error too.
doxygen docs/Doxyfile
echo "== docs: build/docs/html/index.html, build/docs/cpp/html/index.html"
