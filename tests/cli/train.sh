#!/usr/bin/env bash
# hydra train / eval through the real binary: a run and its files, evaluation, every kind of bad
# argument (exit 2, --out left as it was), and SIGKILL: a run killed at chosen instants (mid-accumulation,
# during a checkpoint write) and at random instants, then resumed, ends with the same bytes as a run
# never interrupted; 1 and 2 threads give the same bytes.
#
#   bash tests/cli/train.sh path/to/hydra      (CTest passes the built binary)
set -uo pipefail
hydra=${1:?usage: train.sh path/to/hydra}
tiny="$(cd "$(dirname "$0")/../fixtures/tokenizer" && pwd)/tiny.tokenizer.json"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

# A small model (vocab 320 covers the tiny tokenizer's 260 ids) and data made with hydra tokenize.
small_config "$dir/config.json"
"$hydra" init --config "$dir/config.json" --seed 1 --out "$dir/model" >/dev/null || { echo "FAIL: init"; exit 1; }
seq 1 1500 | tr '\n' ' ' >"$dir/train.txt"
seq 7000 7300 | tr '\n' ' ' >"$dir/head.txt"
seq 500 700 | tr '\n' ' ' >"$dir/val.txt"
for f in train head val; do
  "$hydra" tokenize --tokenizer "$tiny" "$dir/$f.txt" --out "$dir/$f.bin" >/dev/null || { echo "FAIL: tokenize $f"; exit 1; }
done
for a in 1 2 3 4 5 6 7 8 9 10 11 12; do echo "{\"prompt\": \"$a+$a=\", \"answer\": \"$((a + a))\"}"; done >"$dir/qa.jsonl"

# ---- a run and its files ----
expect 0 "done: 6 steps" -- "$hydra" train "$dir/model" --data "$dir/train.bin" --val "$dir/val.bin" --out "$dir/run" \
  --steps 6 --batch 2 --seq 16 --lr 3e-3 --warmup 2 --eval-every 3 --save-every 2 --keep 2
check "metrics.csv has a header and 6 rows" test "$(wc -l <"$dir/run/metrics.csv")" -eq 7
check "metrics.csv columns" test "$(head -1 "$dir/run/metrics.csv")" = \
  "step,lr,loss,loss_head0,loss_head1,loss_head2,grad_norm,tokens_per_s,elapsed_s,communication_s"
check "eval.csv has 2 rows" test "$(wc -l <"$dir/run/eval.csv")" -eq 3
check "the last 2 checkpoints are kept" test "$(ls "$dir/run/checkpoints" | tr '\n' ' ')" = "step_00000004 step_00000006 "
check "the final model is next to the logs" test -f "$dir/run/model.safetensors" -a -f "$dir/run/config.json"
if command -v gnuplot >/dev/null; then check "loss.svg drawn" grep -q "<svg" "$dir/run/loss.svg"; fi
expect 0 "head 2: loss" -- "$hydra" eval "$dir/run" --data "$dir/val.bin" --seq 16
expect 0 '"product_of_experts"' -- "$hydra" eval "$dir/run" --data "$dir/val.bin" --seq 16 --max-batches 2 --json
expect 0 "exact match" -- "$hydra" eval "$dir/run" --sft "$dir/qa.jsonl" --tokenizer "$tiny" --seq 16
expect 0 "heads trained: 1 of 3 (trunk frozen" -- "$hydra" train "$dir/model" --data "$dir/train.bin" --out "$dir/heads" \
  --steps 2 --batch 2 --seq 16 --train-heads 1 --freeze 'trunk.*'
expect 0 "memory estimate per step: .* = weights .* + gradients .* + adamw state .* + activations " -- \
  "$hydra" train "$dir/model" --data "$dir/train.bin" --out "$dir/banner" --steps 1 --batch 2 --seq 16 --train-heads 2
expect 0 "memory estimate while evaluating: .* (activations .*: every head's logits at batch 3)" -- \
  "$hydra" train "$dir/model" --data "$dir/train.bin" --val "$dir/val.bin" --eval-batch 3 --out "$dir/banner-val" \
  --steps 1 --batch 2 --seq 16
check "--train-heads logs only that head" test "$(head -1 "$dir/heads/metrics.csv")" = \
  "step,lr,loss,loss_head1,grad_norm,tokens_per_s,elapsed_s,communication_s"
expect 0 "done: 8 steps" -- "$hydra" train "$dir/model" --sft "$dir/qa.jsonl" --tokenizer "$tiny" --out "$dir/sft" \
  --epochs 2 --batch 3 --seq 16 --sft-eos --val "$dir/qa.jsonl"
check "SFT evals report exact match" grep -q "exact_match_ensemble" "$dir/sft/eval.csv"

expect 0 "done: 3 steps" -- "$hydra" train "$dir/model" --data "$dir/train.bin" --out "$dir/lora" --steps 3 --batch 2 \
  --seq 16 --train-heads 0 --lora-rank 2 --lora-dropout 0.1
check "a LoRA run keeps its adapters in the final model" test -f "$dir/lora/adapter_config.json"
expect 0 "head 0: loss" -- "$hydra" eval "$dir/lora" --data "$dir/val.bin" --seq 16
expect 0 "merged 3 LoRA adapters" -- "$hydra" train "$dir/model" --data "$dir/train.bin" --out "$dir/lora-merged" \
  --steps 3 --batch 2 --seq 16 --train-heads 0 --lora-rank 2 --merge-lora
check "--merge-lora writes a plain model" test ! -e "$dir/lora-merged/adapter_config.json"

# The uncertainty head: judge head 2 on head 0's answers (judge tokens that are single tiny-tokenizer ids).
expect 0 "judge Brier" -- "$hydra" train "$dir/model" --objective uncertainty --sft "$dir/qa.jsonl" --tokenizer "$tiny" \
  --judge-head 2 --answer-head 0 --judge-tokens 1,0 --val "$dir/qa.jsonl" --out "$dir/judge" --steps 3 --batch 4 --seq 64
check "the judge's eval.csv" test "$(head -1 "$dir/judge/eval.csv")" = "step,brier,answer_head_accuracy,auroc,ece"
check "only the judge head trained" test "$(head -1 "$dir/judge/metrics.csv")" = \
  "step,lr,loss,loss_head2,grad_norm,tokens_per_s,elapsed_s,communication_s"
expect 0 "ECE" -- "$hydra" eval "$dir/judge" --objective uncertainty --sft "$dir/qa.jsonl" --tokenizer "$tiny" \
  --judge-head 2 --answer-head 0 --judge-tokens 1,0 --seq 64 --reliability-svg "$dir/rel.svg"
if command -v gnuplot >/dev/null; then check "reliability diagram drawn" grep -q "<svg" "$dir/rel.svg"; fi

# ---- bad arguments: exit 2, one message, --out untouched ----
bad() {  # bad PATTERN args...
  local pattern=$1
  shift
  expect 2 "$pattern" -- "$hydra" train "$dir/model" --out "$dir/bad" "$@"
  [[ ! -e "$dir/bad" ]] || { echo "FAIL: a refused run left $dir/bad"; fail=$((fail + 1)); rm -rf "$dir/bad"; }
}
base=(--data "$dir/train.bin" --steps 2 --seq 16)
bad "unknown\|not expected\|extra" "${base[@]}" --bogus-flag
bad "head 5 is out of range" "${base[@]}" --train-heads 5
bad "--batch" "${base[@]}" --batch 0
bad "holds no window of 100001 ids" --data "$dir/train.bin" --steps 2 --seq 100000
bad "expected constant, cosine or linear" "${base[@]}" --schedule step
bad "expected K=PATH" "${base[@]}" --head-data 1
bad "matches no file" --data "$dir/nothing_*.bin" --steps 2
bad "nothing to resume" "${base[@]}" --resume
bad "give --steps N or --epochs E" --data "$dir/train.bin" --seq 16
bad "--sft needs --tokenizer" --sft "$dir/qa.jsonl" --steps 2
bad "need --lora-rank" "${base[@]}" --lora-alpha 4
bad "needs --judge-head U and --answer-head A" --objective uncertainty --sft "$dir/qa.jsonl" --tokenizer "$tiny" --steps 2
bad "must be different heads" --objective uncertainty --sft "$dir/qa.jsonl" --tokenizer "$tiny" --steps 2 \
  --judge-head 1 --answer-head 1
bad "each judge token must be exactly one" --objective uncertainty --sft "$dir/qa.jsonl" --tokenizer "$tiny" --steps 2 \
  --judge-head 1 --answer-head 0 --judge-tokens 'ab c,B' --seq 64
bad "trunk" "${base[@]}" --lora-rank 2 --lora-targets 'trunk.blocks.0.attention.w_q'
bad "dropout" "${base[@]}" --lora-rank 2 --lora-dropout 1.5
printf '{"prompt": "1+1=", "answer": "2"}\n{"prompt": 3}\n' >"$dir/broken.jsonl"
bad "broken.jsonl:2" --sft "$dir/broken.jsonl" --tokenizer "$tiny" --steps 2 --seq 16
head -c 20 "$dir/train.bin" >"$dir/short.bin"
bad "holds no window of 17 ids" --data "$dir/short.bin" --steps 2 --seq 16
expect 2 "already holds a training run" -- "$hydra" train "$dir/model" --out "$dir/run" "${base[@]}"
expect 2 "--batch differs from the run being resumed" -- "$hydra" train "$dir/model" --out "$dir/run" --resume \
  --data "$dir/train.bin" --steps 6 --seq 16 --batch 3 --lr 3e-3 --warmup 2

# ---- SIGKILL at chosen and random instants, then --resume: the bytes of a run never interrupted ----
args=(--data "$dir/train.bin" --head-data "1=$dir/head.bin" --val "$dir/val.bin" --steps 12 --batch 2 --seq 16
      --grad-accum 2 --lr 3e-3 --warmup 2 --eval-every 4 --save-every 2 --keep 2 --seed 7)
"$hydra" train "$dir/model" --out "$dir/straight" "${args[@]}" >/dev/null || { echo "FAIL: straight run"; exit 1; }
resumed_equals_straight() {  # resumed_equals_straight RUN_DIR DESCRIPTION
  check "$2: model.safetensors" cmp -s "$dir/straight/model.safetensors" "$1/model.safetensors"
  check "$2: metrics.csv losses" diff <(losses "$dir/straight/metrics.csv") <(losses "$1/metrics.csv")
  check "$2: eval.csv" cmp -s "$dir/straight/eval.csv" "$1/eval.csv"
}
for kill_at in "micro:5:1" "micro:9:0" "save:6:temp synced" "save:8:new renamed in"; do
  out="$dir/kill-${kill_at//[: ]/_}"
  { HYDRA_TEST_KILL_AT="$kill_at" "$hydra" train "$dir/model" --out "$out" "${args[@]}" >/dev/null 2>&1; rc=$?; } 2>/dev/null
  check "killed at $kill_at (exit $rc)" test $rc -eq 137
  expect 0 "resuming at step" -- "$hydra" train "$dir/model" --out "$out" "${args[@]}" --resume
  resumed_equals_straight "$out" "killed at $kill_at"
done
# Random instants: kill a longer run three times at random moments, each within the first quarter of
# the time an uninterrupted run takes (measured here, so a fast machine and a slow sanitizer build are
# both hit mid-run), resuming each time, then let the last resume finish. Only a run that ended by the
# SIGKILL (status 137) counts as killed; one that finished first would show status 0.
rargs=("${args[@]}")
rargs[7]=40  # --steps 40
start_ns=$(date +%s%N)
"$hydra" train "$dir/model" --out "$dir/straight40" "${rargs[@]}" >/dev/null || { echo "FAIL: straight run"; exit 1; }
run_ms=$((($(date +%s%N) - start_ns) / 1000000))
out="$dir/random"
kills=0
for attempt in 1 2 3; do
  resume=()
  [[ -n "$(ls "$out/checkpoints" 2>/dev/null | grep '^step_')" ]] && resume=(--resume)
  [[ ${#resume[@]} -eq 0 ]] && rm -rf "$out"  # killed before its first checkpoint: start again
  "$hydra" train "$dir/model" --out "$out" "${rargs[@]}" "${resume[@]}" >/dev/null 2>&1 &
  pid=$!
  delay_ms=$((run_ms * (5 + RANDOM % 20) / 100))
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  rc=$?
  ((rc == 137)) && kills=$((kills + 1))
done
resume=()
[[ -n "$(ls "$out/checkpoints" 2>/dev/null | grep '^step_')" ]] && resume=(--resume)
[[ ${#resume[@]} -eq 0 ]] && rm -rf "$out"
expect 0 "" -- "$hydra" train "$dir/model" --out "$out" "${rargs[@]}" "${resume[@]}"
check "random kills: at least 2 of 3 attempts were killed mid-run (run takes ${run_ms} ms)" test $kills -ge 2
echo "random kills: killed $kills time(s); an uninterrupted run takes ${run_ms} ms"
check "killed at random: model.safetensors" cmp -s "$dir/straight40/model.safetensors" "$out/model.safetensors"
check "killed at random: metrics.csv losses" diff <(losses "$dir/straight40/metrics.csv") <(losses "$out/metrics.csv")

# ---- threads ----
"$hydra" --threads 1 train "$dir/model" --out "$dir/t1" "${base[@]}" --batch 2 >/dev/null
"$hydra" --threads 2 train "$dir/model" --out "$dir/t2" "${base[@]}" --batch 2 >/dev/null
check "1 and 2 threads: the same model bytes" cmp -s "$dir/t1/model.safetensors" "$dir/t2/model.safetensors"

echo "train.sh: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
