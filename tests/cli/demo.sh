#!/usr/bin/env bash
# The README's demo end to end (scripts/demo.sh --quick, against the built hydra; run.sh's install and
# build steps are not repeated): it exits 0, writes every step's outputs, its validation loss ends well
# below a uniform guess over the vocabulary, and it prints the speculative acceptance rate. Bad usage of
# run.sh and demo.sh exits 2, a corrupt corpus is refused, and a directory the demo did not make is
# never emptied. CTest label: demo (`ctest -L demo` runs it alone, `ctest -LE demo` skips it).
#
#   bash tests/cli/demo.sh path/to/hydra      (CTest passes the built binary)
set -uo pipefail
hydra=${1:?usage: demo.sh path/to/hydra}
if [[ -n "${HYDRA_DEMO_SKIP:-}" ]]; then
  echo "skipped: $HYDRA_DEMO_SKIP"
  exit 77  # CTest's SKIP_RETURN_CODE for this test
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build_dir=$(cd "$(dirname "$hydra")" && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
demo=(bash "$root/scripts/demo.sh")

# ---- bad usage: exit 2 with the reason, before any work ----
expect 2 "demo.sh: unknown option '--bogus'" -- "${demo[@]}" "$build_dir" --quick --bogus --out "$dir/x"
expect 2 "demo.sh: BUILD_DIR is missing" -- "${demo[@]}" --quick
expect 2 "demo.sh: unexpected argument 'extra'" -- "${demo[@]}" "$build_dir" extra
expect 2 "demo.sh: --out needs a directory" -- "${demo[@]}" "$build_dir" --out
expect 2 "demo.sh: no hydra binary in '$dir'" -- "${demo[@]}" "$dir" --quick
check "nothing was written for bad usage" -- test ! -e "$dir/x"
# run.sh checks its arguments before installing or building anything.
expect 2 "run.sh: unknown argument '--bogus'" -- bash "$root/scripts/run.sh" --bogus
expect 2 "run.sh: --out needs a directory" -- bash "$root/scripts/run.sh" --quick --out
# A directory the demo did not make is refused, and left as it was.
mkdir "$dir/mine" && echo "keep me" >"$dir/mine/notes.txt"
expect 2 "'$dir/mine' exists and was not made by the demo" -- "${demo[@]}" "$build_dir" --quick --out "$dir/mine"
check "the user's directory is untouched" -- test "$(cat "$dir/mine/notes.txt")" = "keep me"

# ---- a corrupt corpus is refused at the first step ----
cp "$root/data/kjv.txt.zst" "$dir/corrupt.zst"
printf 'X' | dd of="$dir/corrupt.zst" bs=1 seek=5000 conv=notrunc status=none
HYDRA_DEMO_CORPUS="$dir/corrupt.zst" expect 1 "corrupt.zst' is corrupt: sha256 .*, expected 1b790d14" -- \
  "${demo[@]}" "$build_dir" --quick --out "$dir/corrupt"
check "no model was trained from a corrupt corpus" -- test ! -e "$dir/corrupt/init"

# ---- the quick demo ----
out="$dir/run"
started=$SECONDS
"${demo[@]}" "$build_dir" --quick --out "$out" >"$dir/log" 2>&1
rc=$?
echo "the quick demo took $((SECONDS - started)) s"
check "the quick demo exits 0 (exit code $rc; the last lines of its output follow)" -- test "$rc" -eq 0
[[ $rc -eq 0 ]] || tail -30 "$dir/log"
for f in data/train.txt data/val.txt data/train_part2.txt data/train.bin data/val.bin.json tokenizer.json \
         init/model.safetensors pretrain/model.safetensors pretrain/metrics.csv pretrain/eval.csv \
         pretrain/samples.txt heads/model.safetensors heads/metrics.csv heads/eval.csv eval.txt \
         eval_part1_heads.txt samples/head0.txt samples/head1.txt samples/head2.txt samples/speculative.txt; do
  check "the demo wrote $f" -- test -s "$out/$f"
done
if command -v gnuplot >/dev/null; then
  check "pretrain/loss.svg is drawn" -- grep -q "<svg" "$out/pretrain/loss.svg"
  check "heads/loss.svg is drawn" -- grep -q "<svg" "$out/heads/loss.svg"
fi
check "the corpus is split into 1189 chapters" -- grep -q "1189 chapters" "$dir/log"
check "the fine-tuning froze the trunk" -- grep -q "heads trained: 0,1,2 of 3 (trunk frozen" "$dir/log"
check "each head fine-tuned on its own part" -- \
  test "$(grep -c "^  data head[0-2] (heads [0-2]): .*train_part[0-2].bin" "$dir/log")" -eq 3
check "the fine-tuning logged every head's loss" -- \
  test "$(head -1 "$out/heads/metrics.csv")" = "step,lr,loss,loss_head0,loss_head1,loss_head2,grad_norm,tokens_per_s,elapsed_s,communication_s"

# The validation loss of every head and of the ensemble, from hydra eval's report, at least one nat below
# ln(V): a uniform guess over the vocabulary (V from the tokenizer the demo trained).
vocab=$(sed -n 's/.*"vocab_size": \([0-9]*\).*/\1/p' "$out/data/val.bin.json")
check "the vocabulary size is known ($vocab)" -- test -n "$vocab"
for what in "head 0" "head 1" "head 2" "ensemble (mean logits)"; do
  loss=$(awk -v what="  $what:" 'index($0, what) == 1 { for (i = 1; i < NF; i++) if ($i == "loss") print $(i + 1) }' "$out/eval.txt")
  check "$what: validation loss '$loss' < ln($vocab) - 1" -- \
    awk -v loss="$loss" -v v="$vocab" 'BEGIN { exit !(loss != "" && loss + 0 < log(v) - 1) }'
done
check "the summary gives the heads' disagreement" -- grep -q "heads' argmax disagree at 0\.[0-9]* of positions" "$dir/log"
check "the speculative acceptance rate is printed" -- \
  grep -q "speculative decoding: acceptance rate [01]\.[0-9]* ([0-9]* of [0-9]* proposals)" "$dir/log"
for k in 0 1 2; do
  check "head $k's sample has words" -- grep -q "[A-Za-z][a-z]" "$out/samples/head$k.txt"
done
check "the summary lists the output directory" -- grep -q "everything is in $out" "$dir/log"

# Running the demo again into its own directory empties it first (here the run stops at the corrupt
# corpus, so only the new run's first files are there).
HYDRA_DEMO_CORPUS="$dir/corrupt.zst" expect 1 "is corrupt" -- "${demo[@]}" "$build_dir" --quick --out "$out"
check "a second run replaced the first" -- test -f "$out/.hydra-demo" -a ! -e "$out/heads"

echo "demo: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
