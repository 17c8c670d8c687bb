#!/usr/bin/env bash
# hydra init / info / forward through the real binary: outputs, shapes, and exit code 2 with a clear
# message for every kind of bad input (never a crash, never output left behind).
set -uo pipefail
hydra="$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

npy_shape() { head -c 128 "$1" | tr -d '\0' | grep -ao "'shape': ([0-9, ]*)"; }

expect 0 "wrote" -- "$hydra" init --preset tiny --seed 3 --out "$dir/tiny"
[[ -f "$dir/tiny/config.json" && -f "$dir/tiny/model.safetensors" ]] || { echo "FAIL: init wrote no files"; fail=$((fail + 1)); }
expect 2 "already exists" -- "$hydra" init --preset tiny --out "$dir/tiny"
expect 2 "unknown preset 'huge'" -- "$hydra" init --preset huge --out "$dir/x"
expect 2 "trunk_layers" -- "$hydra" init --preset tiny --heads-depth 9 --out "$dir/x"
[[ ! -e "$dir/x" ]] || { echo "FAIL: a failed init left $dir/x"; fail=$((fail + 1)); }

expect 0 "total" -- "$hydra" info "$dir/tiny"
expect 0 "9,727,315,968" -- "$hydra" info olmo2-7b
expect 0 "non-embedding *9,316,274,176" -- "$hydra" info olmo2-7b
expect 0 "head 4" -- "$hydra" info olmo2-1b
expect 2 "unknown preset" -- "$hydra" info nosuchthing
# The memory table: each row weights, gradients, optimizer state, activations, total (docs/training.md).
expect 0 "training step (AdamW) *288.11 MiB *288.11 MiB *576.22 MiB *787.05 MiB *1.89 GiB" -- \
  "$hydra" info small --batch 8 --seq 256
expect 0 "fine-tuning heads 0,2 (SGD)" -- "$hydra" info tiny --train-heads 0,2 --optimizer sgd
expect 0 "LoRA r4 w_q,w_v, head 1" -- "$hydra" info tiny --train-heads 1 --lora-rank 4 --lora-targets w_q,w_v
expect 2 "--train-heads: head 3 is out of range (the model has 3 heads: 0 to 2)" -- "$hydra" info tiny --train-heads 3
expect 2 "--train-heads: head 1 is listed twice" -- "$hydra" info tiny --train-heads 1,1
expect 2 "--train-heads: 'x' is not a whole number" -- "$hydra" info tiny --train-heads 0,x
expect 2 "unknown optimizer 'adam' (expected adamw or sgd)" -- "$hydra" info tiny --optimizer adam
expect 2 "LoRA target 'nope' matches no linear" -- "$hydra" info tiny --lora-targets nope
expect 2 "targets holds an empty pattern" -- "$hydra" info tiny --lora-targets w1,

expect 0 "logits \[3, 2, 3, 4096\]" -- "$hydra" forward "$dir/tiny" --tokens "1,2,3;4,5,6" --out "$dir/logits.npy"
[[ "$(npy_shape "$dir/logits.npy")" == "'shape': (3, 2, 3, 4096)" ]] || { echo "FAIL: logits.npy shape $(npy_shape "$dir/logits.npy")"; fail=$((fail + 1)); }
expect 0 "logits \[3, 1, 1, 4096\]" -- "$hydra" forward "$dir/tiny" --tokens "7,8,9" --heads 2,0,2 --last-token-only --out "$dir/l2.npy"
expect 0 "hidden \[1, 1, 3, 256\]" -- "$hydra" forward "$dir/tiny" --tokens "7,8,9" --hidden-heads 1 --hidden-out "$dir/h.npy" --out "$dir/l3.npy"
# The same request twice gives byte-identical output (determinism through the CLI).
"$hydra" forward "$dir/tiny" --tokens "1,2,3;4,5,6" --out "$dir/again.npy" >/dev/null
cmp -s "$dir/logits.npy" "$dir/again.npy" || { echo "FAIL: forward is not deterministic"; fail=$((fail + 1)); }
"$hydra" --threads 1 forward "$dir/tiny" --tokens "1,2,3;4,5,6" --out "$dir/one.npy" >/dev/null
cmp -s "$dir/logits.npy" "$dir/one.npy" || { echo "FAIL: 1 thread and all threads differ"; fail=$((fail + 1)); }

expect 2 "token id 5000 at position \[1, 0\] of ids \[2, 2\] is out of range for a vocabulary of 4096" -- "$hydra" forward "$dir/tiny" --tokens "1,2;5000,3" --out "$dir/bad.npy"
expect 2 "token id -1 at position \[0, 1\]" -- "$hydra" forward "$dir/tiny" --tokens "1,-1" --out "$dir/bad.npy"
# An empty head list is an error, as in the API (leaving the option out means every head).
expect 2 "--heads: empty list" -- "$hydra" forward "$dir/tiny" --tokens "1,2" --heads '' --out "$dir/bad.npy"
expect 2 "--hidden-heads: empty list" -- "$hydra" forward "$dir/tiny" --tokens "1,2" --hidden-heads '' --hidden-out "$dir/h3.npy" --out "$dir/bad.npy"
expect 2 "'' is not an integer" -- "$hydra" forward "$dir/tiny" --tokens "1,2" --heads 0, --out "$dir/bad.npy"
expect 2 "row 1 has 1 ids but row 0 has 2" -- "$hydra" forward "$dir/tiny" --tokens "1,2;3" --out "$dir/bad.npy"
expect 2 "'x' is not an integer" -- "$hydra" forward "$dir/tiny" --tokens "1,x" --out "$dir/bad.npy"
expect 2 "head index 3" -- "$hydra" forward "$dir/tiny" --tokens "1,2" --heads 3 --out "$dir/bad.npy"
expect 2 "not among the selected" -- "$hydra" forward "$dir/tiny" --tokens "1,2" --heads 0 --hidden-heads 1 --hidden-out "$dir/h2.npy" --out "$dir/bad.npy"
expect 2 "config.json" -- "$hydra" forward "$dir/nomodel" --tokens "1,2" --out "$dir/bad.npy"
echo "garbage" >"$dir/ids.npy"
expect 2 "ids.npy" -- "$hydra" forward "$dir/tiny" --tokens-file "$dir/ids.npy" --out "$dir/bad.npy"
[[ ! -e "$dir/bad.npy" ]] || { echo "FAIL: a failed forward wrote $dir/bad.npy"; fail=$((fail + 1)); }
cp "$dir/logits.npy" "$dir/keep.npy"
"$hydra" forward "$dir/tiny" --tokens "1,99999" --out "$dir/keep.npy" >/dev/null 2>&1
cmp -s "$dir/logits.npy" "$dir/keep.npy" || { echo "FAIL: a failed forward touched an existing output"; fail=$((fail + 1)); }

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
