#!/usr/bin/env bash
# Configures and builds Hydra in Release with every core.
#
#   bash scripts/build.sh [BUILD_DIR [CMAKE_ARGS...]] [-- TARGETS...]
#
# BUILD_DIR defaults to `build` (relative to the repo root); CMAKE_ARGS go to the configure step (e.g.
# -DHYDRA_SANITIZE=ON); TARGETS after `--` limit the build (default: everything). Options not given keep
# the value cached in BUILD_DIR, so alternating run.sh and test.sh does not rebuild the world.
# It does not install dependencies: run.sh and test.sh call scripts/install-deps.sh first.
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

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "${cmake_args[@]}"
if [[ ${#targets[@]} -gt 0 ]]; then
  cmake --build "$build_dir" --parallel "$jobs" --target "${targets[@]}"
else
  cmake --build "$build_dir" --parallel "$jobs"
fi
