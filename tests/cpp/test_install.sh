#!/usr/bin/env bash
# Installs dlopt with `cmake --install` into a temporary prefix, moves the prefix (the package must be
# relocatable), builds examples/cpp against it with find_package(dlopt CONFIG), and runs it; then
# builds the same example with add_subdirectory(<source tree>).
#
#   tests/cpp/test_install.sh                 # fresh build of dlopt in a temp dir (DLOPT_CUDA=AUTO)
#   DLOPT_BUILD_DIR=build/x tests/cpp/test_install.sh   # reuse (or create) that build dir
#   DLOPT_CMAKE_ARGS="-DDLOPT_CUDA=OFF" tests/cpp/test_install.sh
set -euo pipefail
src="$(cd "$(dirname "$0")/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
jobs="$(nproc 2>/dev/null || echo 2)"
build="${DLOPT_BUILD_DIR:-$tmp/build}"

echo "== build and install dlopt"
# shellcheck disable=SC2086
cmake -S "$src" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
  -DDLOPT_BUILD_PYTHON=OFF ${DLOPT_CMAKE_ARGS:-} >"$tmp/configure.log" || { cat "$tmp/configure.log"; exit 1; }
cmake --build "$build" --parallel "$jobs" >"$tmp/build.log" || { tail -50 "$tmp/build.log"; exit 1; }
cmake --install "$build" --prefix "$tmp/stage" >/dev/null
test -x "$tmp/stage/bin/dlopt-bench" || { echo "dlopt-bench was not installed"; exit 1; }

echo "== relocate the installed package and use it through find_package"
mv "$tmp/stage" "$tmp/moved"
if grep -rq "$tmp/stage" "$tmp/moved/lib"*/cmake/dlopt; then
  echo "installed CMake files hard-code the install prefix (not relocatable)"; exit 1
fi
cmake -S "$src/examples/cpp" -B "$tmp/example" "${gen[@]}" -DCMAKE_PREFIX_PATH="$tmp/moved" >/dev/null
cmake --build "$tmp/example" >/dev/null
"$tmp/example/dlopt_example"
(cd "$tmp" && "$tmp/example/dlopt_training_example" >/dev/null)  # the installed dlopt/resume.hpp
"$tmp/moved/bin/dlopt-bench" --sizes 1e4 --optimizers adam --dtypes float32 --min-time 0.01 --linear-rows 1e4 >/dev/null

echo "== add_subdirectory"
cmake -S "$src/examples/cpp" -B "$tmp/example-sub" "${gen[@]}" -DDLOPT_SOURCE_DIR="$src" >/dev/null
cmake --build "$tmp/example-sub" --parallel "$jobs" >"$tmp/sub.log" || { tail -50 "$tmp/sub.log"; exit 1; }
"$tmp/example-sub/dlopt_example"
echo "test_install: OK"
