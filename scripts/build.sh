#!/usr/bin/env bash
# Configures and builds Hydra in Release with every core.
#
#   bash scripts/build.sh [BUILD_DIR [CMAKE_ARGS...]] [-- TARGETS...]
#
# BUILD_DIR defaults to `build` (relative to the repo root); CMAKE_ARGS go to the configure step (e.g.
# -DHYDRA_SANITIZE=ON); TARGETS after `--` limit the build (default: everything). Options not given keep
# the value cached in BUILD_DIR, so alternating run.sh and test.sh does not rebuild the world.
# It does not install dependencies: run.sh and test.sh call scripts/install-deps.sh first.
#
# The compiler is $CXX (and $CC) when set, else CMake's default (c++); a tree configured with another
# compiler is deleted and configured afresh, since CMake cannot switch compilers in place. ccache is used
# when it is installed and no launcher is given (ccache is never required; CCACHE_DISABLE=1 bypasses it).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${1:-build}
[[ $# -gt 0 ]] && shift
cmake_args=()
targets=()
while [[ $# -gt 0 ]]; do
  if [[ "$1" == "--" ]]; then
    shift
    targets=("$@")
    break
  fi
  cmake_args+=("$1")
  shift
done
[[ "$build_dir" = /* ]] || build_dir="$root/$build_dir"

if [[ -n "${CXX:-}" && -f "$build_dir/CMakeCache.txt" ]]; then
  cached=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build_dir/CMakeCache.txt")
  wanted=$(command -v "$CXX" || echo "$CXX")
  if [[ "$(realpath -m "$cached")" != "$(realpath -m "$wanted")" ]]; then
    echo "build.sh: $build_dir was configured with $cached, not $CXX: configuring it afresh"
    rm -rf "$build_dir"
  fi
fi
if [[ " ${cmake_args[*]-} " != *" -DCMAKE_CXX_COMPILER_LAUNCHER="* ]]; then
  # Empty when ccache is missing, so a tree configured while it was installed still builds.
  cmake_args+=("-DCMAKE_CXX_COMPILER_LAUNCHER=$(command -v ccache || true)")
fi

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "${cmake_args[@]}"
if [[ ${#targets[@]} -gt 0 ]]; then
  cmake --build "$build_dir" --parallel "$jobs" --target "${targets[@]}"
else
  cmake --build "$build_dir" --parallel "$jobs"
fi
