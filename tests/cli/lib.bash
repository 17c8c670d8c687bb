# Shared by the CLI tests (tests/cli/*.sh), which source it after setting $hydra. (Not *.sh: CMake
# makes a test of every tests/cli/*.sh.)
#
#   expect CODE PATTERN -- command...   the command exits with CODE and PATTERN (a grep regex; set
#                                       EXPECT_FIXED=1 for a fixed string) is in its stdout+stderr
#                                       (in its stderr alone with EXPECT_STDERR=1).
#   check DESCRIPTION [--] command...   the command succeeds (a test, cmp, ...).
# Counts into $pass and $fail; a failure prints the command, its exit code and its first lines.
pass=0
fail=0

expect() {
  local code=$1 pattern=$2
  shift 3  # CODE PATTERN --
  local out rc flags=-q
  [[ "${EXPECT_FIXED:-0}" == 1 ]] && flags=-qF
  if [[ "${EXPECT_STDERR:-0}" == 1 ]]; then
    out=$("$@" 2>&1 >/dev/null)
  else
    out=$("$@" 2>&1)
  fi
  rc=$?
  if [[ $rc -ne $code ]] || ! grep $flags -- "$pattern" <<<"$out"; then
    echo "FAIL: '$*' exited $rc (want $code), output lacks '$pattern':"
    echo "$out" | head -5
    fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
}

check() {
  local what=$1
  shift
  [[ "${1:-}" == "--" ]] && shift  # the -- is optional
  if "$@"; then pass=$((pass + 1)); else echo "FAIL: $what"; fail=$((fail + 1)); fi
}
