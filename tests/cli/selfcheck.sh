#!/usr/bin/env bash
# `hydra selfcheck` end to end: it exits 0 with a falling loss, its result does not depend on the
# thread count (the determinism promise of tensor/parallel.h, checked through the real binary), and a
# run too short to learn exits 1 with the reason. Also `hydra version`.
#
#   bash tests/cli/selfcheck.sh path/to/hydra      (CTest passes the built binary)
set -euo pipefail
hydra=${1:?usage: selfcheck.sh path/to/hydra}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "FAIL: $*" >&2
  for f in "$tmp"/*; do [[ -f "$f" ]] && { echo "--- $(basename "$f"):" >&2; cat "$f" >&2; }; done
  exit 1
}

# The loss printed on each "step" line, one per line.
losses() { awk '$1 == "step" { for (i = 1; i < NF; i++) if ($i == "loss") print $(i + 1) }' "$1"; }

# 1. The default run passes, and its loss falls: the last printed loss is below half the first.
"$hydra" selfcheck >"$tmp/out" 2>"$tmp/err" || fail "hydra selfcheck exited $? (expected 0)"
grep -q "selfcheck passed" "$tmp/out" || fail "no 'selfcheck passed' line"
losses "$tmp/out" >"$tmp/losses"
[[ $(wc -l <"$tmp/losses") -ge 3 ]] || fail "expected at least 3 step lines with a loss"
first=$(head -n1 "$tmp/losses")
last=$(tail -n1 "$tmp/losses")
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < 0.5 * a) }' || fail "loss did not fall: $first -> $last"

# 2. The losses are the same with 1 and 2 threads (bit-identical results print identically), and
#    --threads works after the subcommand as well as before it.
"$hydra" --threads 1 selfcheck --steps 30 --seed 7 >"$tmp/t1" 2>&1 || fail "selfcheck with --threads 1 failed"
"$hydra" selfcheck --steps 30 --seed 7 --threads 2 >"$tmp/t2" 2>&1 || fail "selfcheck with --threads 2 failed"
grep -q "threads: 1" "$tmp/t1" || fail "--threads 1 was not applied"
grep -q "threads: 2" "$tmp/t2" || fail "--threads 2 (after the subcommand) was not applied"
[[ "$(losses "$tmp/t1")" == "$(losses "$tmp/t2")" ]] || fail "losses differ between 1 and 2 threads"
# HYDRA_NUM_THREADS is the default when --threads is absent.
HYDRA_NUM_THREADS=1 "$hydra" selfcheck --steps 30 --seed 7 >"$tmp/env" 2>&1 || fail "selfcheck with HYDRA_NUM_THREADS=1 failed"
grep -q "threads: 1" "$tmp/env" || fail "HYDRA_NUM_THREADS=1 was not applied"

# 3. A different seed gives a different run.
"$hydra" --threads 1 selfcheck --steps 30 --seed 8 >"$tmp/s8" 2>&1 || fail "selfcheck with --seed 8 failed"
[[ "$(losses "$tmp/t1")" != "$(losses "$tmp/s8")" ]] || fail "--seed 7 and --seed 8 gave the same losses"

# 4. One step cannot show a falling loss: exit code 1 and a reason on stderr.
set +e
"$hydra" selfcheck --steps 1 >"$tmp/one" 2>"$tmp/one_err"
code=$?
set -e
[[ $code -eq 1 ]] || fail "selfcheck --steps 1 exited $code (expected 1)"
grep -q "selfcheck failed" "$tmp/one_err" || fail "selfcheck --steps 1 did not say why it failed"

# 5. version names Hydra and the BLAS it runs on.
"$hydra" version >"$tmp/version" 2>&1 || fail "hydra version failed"
grep -q "^hydra [0-9]" "$tmp/version" || fail "hydra version printed no version"
grep -q "OpenBLAS" "$tmp/version" || fail "hydra version did not name the BLAS"

echo "selfcheck.sh: ok"
