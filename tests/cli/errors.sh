#!/usr/bin/env bash
# The CLI's error policy (cli/main.cpp): every bad invocation exits with code 2 and a message on stderr,
# never a crash; --help and --version exit 0.
#
#   bash tests/cli/errors.sh path/to/hydra      (CTest passes the built binary)
set -uo pipefail  # no -e: the commands under test are meant to fail
hydra=${1:?usage: errors.sh path/to/hydra}
failures=0

# expect CODE "TEXT" [ENV=VALUE...] -- ARGS...: hydra ARGS exits CODE and its stderr contains TEXT.
expect() {
  local want_code=$1 want_text=$2
  shift 2
  local envs=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do envs+=("$1"); shift; done
  shift  # the --
  local err code
  err=$(env "${envs[@]}" "$hydra" "$@" 2>&1 >/dev/null)
  code=$?
  if [[ $code -ne $want_code ]]; then
    echo "FAIL: ${envs[*]} hydra $*: exit code $code, expected $want_code; stderr: $err" >&2
    failures=$((failures + 1))
  elif [[ -n "$want_text" && "$err" != *"$want_text"* ]]; then
    echo "FAIL: ${envs[*]} hydra $*: stderr lacks '$want_text'; got: $err" >&2
    failures=$((failures + 1))
  fi
}

# Bad thread counts, before or after the subcommand, from the flag or the environment.
expect 2 "--threads" -- --threads 0 version
expect 2 "--threads" -- --threads abc version
expect 2 "--threads" -- --threads -3 version
expect 2 "--threads" -- --threads 1.5 version
expect 2 "--threads" -- version --threads 0
expect 2 "--threads" -- selfcheck --threads abc
expect 2 "HYDRA_NUM_THREADS" HYDRA_NUM_THREADS=0 -- version
expect 2 "HYDRA_NUM_THREADS" HYDRA_NUM_THREADS=abc -- version
# Unknown or missing subcommands and options.
expect 2 "unknown subcommand 'frobnicate'" -- frobnicate
expect 2 "no subcommand" --
expect 2 "--bogus" -- version --bogus
expect 2 "--bogus" -- --bogus version
expect 2 "--steps" -- selfcheck --steps 0
expect 2 "--steps" -- selfcheck --steps many
expect 2 "--seed" -- selfcheck --seed x
# Every error message has the "hydra: error:" prefix.
expect 2 "hydra: error:" -- --threads 0 version
expect 2 "hydra: error:" HYDRA_NUM_THREADS=abc -- version
# Help and version are not errors.
expect 0 "" -- --help
expect 0 "" -- selfcheck --help
expect 0 "" -- --version

if [[ $failures -ne 0 ]]; then
  echo "errors.sh: $failures check(s) failed" >&2
  exit 1
fi
echo "errors.sh: ok"
