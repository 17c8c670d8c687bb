#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/fuzz_*.cpp) with clang, ASan and UBSan in $HYDRA_FUZZ_BUILD
# (default build-asan/, the clang tree scripts/test.sh also runs the tests in), and runs each for SECONDS
# (default 30), $HYDRA_FUZZ_JOBS at a time (default 2).
# Fails if any target finds a crash, a sanitizer report, an escaping exception, a hang (> 10 s on one
# input) or an allocation over 512 MB (inputs are a few KB: no parser may allocate what the file cannot
# justify).
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET ...]     e.g. bash scripts/fuzz.sh 600 fuzz_npy_header
#
# Each target starts from its committed seed corpus tests/fuzz/corpus/<name without fuzz_>/, mutates with a
# depth/size-stress dictionary (tests/fuzz/dict/: binary.dict for .npy and token files, json.dict for the
# rest), and keeps what it learns in <build>/corpus/<target>/ (not committed). A finding is saved in <build>/findings/ and
# reproduced by running the target binary on that file.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seconds=${1:-30}
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [[ "$seconds" -lt 1 ]]; then
  echo "fuzz.sh: SECONDS must be a whole number of seconds >= 1, got '$seconds'" >&2
  exit 2
fi

for tool in clang clang++; do
  command -v "$tool" >/dev/null || { echo "fuzz.sh: $tool not found (bash scripts/install-deps.sh installs it)" >&2; exit 1; }
done
build=${HYDRA_FUZZ_BUILD:-build-asan}

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for src in tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$src" .cpp)"); done
fi
# The configure step picks up new fuzz_*.cpp files; a tree test.sh configured keeps its tests.
CC=clang CXX=clang++ bash scripts/build.sh "$build" -DHYDRA_FUZZ=ON -DHYDRA_WERROR=ON -DHYDRA_BUILD_BENCH=OFF \
  -- "${targets[@]}" >/dev/null

mkdir -p "$build/findings" "$build/logs"
run_target() {
  local target=$1 seconds=$2 build=$3
  local seeds="tests/fuzz/corpus/${target#fuzz_}" corpus="$build/corpus/$target"
  local findings="$build/findings/$target" log="$build/logs/$target.log"
  [[ -d "$seeds" ]] || { echo "fuzz.sh: no seed corpus $seeds for $target" >&2; return 1; }
  mkdir -p "$corpus" "$findings"
  # A depth/size-stress dictionary: binary headers or JSON (tests/fuzz/dict/).
  local dict=tests/fuzz/dict/json.dict
  case "$target" in fuzz_npy_header | fuzz_token_file) dict=tests/fuzz/dict/binary.dict ;; esac
  if ASAN_OPTIONS=halt_on_error=1:detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
     "$build/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=512 \
       -dict="$dict" -artifact_prefix="$findings/" -print_final_stats=1 "$corpus" "$seeds" >"$log" 2>&1; then
    echo "fuzz.sh: $target: $(grep -m1 -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$') runs in ${seconds} s, no findings"
  else
    echo "fuzz.sh: $target: FINDING — see $log and $findings/ (reproduce: $build/$target FILE)" >&2
    grep -m3 -E "ERROR|SUMMARY|terminate|what\(\)" "$log" >&2 || tail -20 "$log" >&2
    return 1
  fi
}
export -f run_target

jobs=${HYDRA_FUZZ_JOBS:-2}
echo "fuzz.sh: running ${#targets[@]} targets for $seconds s each, $jobs at a time"
printf '%s\n' "${targets[@]}" | xargs -P "$jobs" -I{} bash -c "run_target {} $seconds $build"
echo "fuzz.sh: PASSED: ${targets[*]}"
