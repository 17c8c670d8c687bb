#!/usr/bin/env bash
# The CLI's error policy (cli/main.cpp): every bad invocation exits with code 2 and a message on stderr,
# never a crash; --help and --version exit 0.
#
#   bash tests/cli/errors.sh path/to/hydra      (CTest passes the built binary)
set -uo pipefail  # no -e: the commands under test are meant to fail
hydra=${1:?usage: errors.sh path/to/hydra}

source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
export EXPECT_FIXED=1   # the patterns below are plain text
export EXPECT_STDERR=1  # and the messages must be on stderr

# Bad thread counts, before or after the subcommand, from the flag or the environment.
expect 2 "--threads" -- "$hydra" --threads 0 version
expect 2 "--threads" -- "$hydra" --threads abc version
expect 2 "--threads" -- "$hydra" --threads -3 version
expect 2 "--threads" -- "$hydra" --threads 1.5 version
expect 2 "--threads" -- "$hydra" version --threads 0
expect 2 "--threads" -- "$hydra" selfcheck --threads abc
expect 2 "HYDRA_NUM_THREADS" -- env HYDRA_NUM_THREADS=0 "$hydra" version
expect 2 "HYDRA_NUM_THREADS" -- env HYDRA_NUM_THREADS=abc "$hydra" version
# Unknown or missing subcommands and options.
expect 2 "unknown subcommand 'frobnicate'" -- "$hydra" frobnicate
expect 2 "no subcommand" -- "$hydra"
expect 2 "--bogus" -- "$hydra" version --bogus
expect 2 "--bogus" -- "$hydra" --bogus version
expect 2 "--steps" -- "$hydra" selfcheck --steps 0
expect 2 "--steps" -- "$hydra" selfcheck --steps many
expect 2 "--seed" -- "$hydra" selfcheck --seed x
# Every error message has the "hydra: error:" prefix.
expect 2 "hydra: error:" -- "$hydra" --threads 0 version
expect 2 "hydra: error:" -- env HYDRA_NUM_THREADS=abc "$hydra" version
# Help and version are not errors.
expect 0 "" -- "$hydra" --help
expect 0 "" -- "$hydra" selfcheck --help
expect 0 "" -- "$hydra" --version

echo "errors.sh: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
