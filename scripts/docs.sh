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

echo "== Doxygen: cpp/include/dlopt -> build/docs/cpp/html (warnings are errors)"
mkdir -p build/docs/cpp
doxygen docs/Doxyfile
# These headers document every public name: there an undocumented one is an error too (a second run,
# its output thrown away).
KEY_HEADERS=(optim/optimizer.hpp optim/any_optimizer.hpp optim/betas.hpp optim/registry.hpp metrics.hpp
  models/linear.hpp clip.hpp average.hpp schedule.hpp distributed/mpi.hpp distributed/layout.hpp
  core/aligned.hpp core/blocks.hpp core/device.hpp core/error.hpp core/formats.hpp core/rule.hpp core/span.hpp
  core/step.hpp core/storage.hpp)
mkdir -p build/docs/cpp-key
{ cat docs/Doxyfile; echo "INPUT = ${KEY_HEADERS[*]/#/cpp/include/dlopt/}"; echo "WARN_IF_UNDOCUMENTED = YES"
  echo "OUTPUT_DIRECTORY = build/docs/cpp-key"; echo "USE_MDFILE_AS_MAINPAGE ="; } | doxygen -
echo "== docs: build/docs/html/index.html, build/docs/cpp/html/index.html"
