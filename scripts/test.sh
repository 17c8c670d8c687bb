#!/usr/bin/env bash
# README command 2: install what is missing, build two trees, run every test in each, fuzz every parser:
#   1. `build`      gcc, Release with -Werror (warnings in our code fail the build), ctest;
#   2. `build-asan` clang, AddressSanitizer + UndefinedBehaviorSanitizer + libFuzzer's coverage
#                   instrumentation, -Werror; ctest with leak checking (any sanitizer report fails the run);
#   3. every libFuzzer target, built in build-asan/ too, for $HYDRA_FUZZ_SECONDS seconds each (default 30;
#      0 skips them) via scripts/fuzz.sh.
# One clang tree serves 2 and 3, so the library is compiled twice in all (gcc and clang), not three times.
# Uses ccache when it is installed (scripts/build.sh); CCACHE_DISABLE=1 turns it off.
# Exits non-zero on the first failure and always ends with one summary line giving each stage's time in
# seconds (or the stage that failed). .ci/run runs exactly this.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

stage="starting"
started=$SECONDS
times=""  # "install 0 s, build 301 s, ..." for the summary line
on_exit() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    echo "test.sh: FAILED during: $stage (exit code $rc, after $((SECONDS - started)) s; done before it:" \
         "${times:-nothing})" >&2
  fi
}
trap on_exit EXIT

# run_stage NAME COMMAND...: runs COMMAND as the stage NAME and adds its time to the summary.
run_stage() {
  stage=$1
  shift
  echo "==> $stage"
  local stage_started=$SECONDS
  "$@"
  times+="${times:+, }$stage $((SECONDS - stage_started)) s"
}

run_stage "install" bash scripts/install-deps.sh

run_stage "build" env CC=gcc CXX=g++ bash scripts/build.sh build -DHYDRA_WERROR=ON
run_stage "test" ctest --test-dir build --output-on-failure -j2

# With MPI: tests/cli/mpi.sh runs here too, with Open MPI's own never-freed start-up allocations
# suppressed (tests/lsan_mpi.supp; measured: 53 s for the whole script under the sanitizers).
run_stage "build-asan" env CC=clang CXX=clang++ bash scripts/build.sh build-asan -DHYDRA_FUZZ=ON -DHYDRA_WERROR=ON \
    -DHYDRA_BUILD_TESTS=ON -DHYDRA_BUILD_BENCH=OFF -DHYDRA_MPI=ON

# Any report is a failure: halt at the first error, never recover, and report leaks at exit.
# LeakSanitizer needs ptrace-like access that some containers deny (it then dies with a fatal error even
# in a correct program), so a one-line probe decides whether leak checking can run here.
stage="probing LeakSanitizer"
detect_leaks=1
probe_dir=$(mktemp -d)
if ! { echo 'int main() { return 0; }' | clang++ -x c++ -fsanitize=address -o "$probe_dir/probe" - &&
       ASAN_OPTIONS=detect_leaks=1 "$probe_dir/probe"; } >/dev/null 2>&1; then
  detect_leaks=0
  echo "test.sh: note: LeakSanitizer does not work in this environment; leak checking is off"
fi
rm -rf "$probe_dir"
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=${detect_leaks}:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

run_stage "test-asan" ctest --test-dir build-asan --output-on-failure -j2

fuzz_seconds=${HYDRA_FUZZ_SECONDS:-30}
if [[ "$fuzz_seconds" != "0" ]]; then
  run_stage "fuzz" env HYDRA_FUZZ_BUILD=build-asan bash scripts/fuzz.sh "$fuzz_seconds"
fi

stage="done"
echo "test.sh: PASSED in $((SECONDS - started)) s (gcc Release -Werror; clang ASan+UBSan -Werror," \
     "detect_leaks=${detect_leaks}; fuzzers ${fuzz_seconds} s each): ${times}"
