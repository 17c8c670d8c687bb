#!/usr/bin/env bash
# --dtype bf16 through the real binary: forward runs and is repeatable, eval's loss within 1% of float32's,
# generate naming its kernel path (and the same ids on both paths), convert --dtype bf16 writing BF16
# matrices that load both ways, train refusing bfloat16, and a bad --dtype value exiting 2 naming it.
#
#   bash tests/cli/bf16.sh path/to/hydra      (CTest passes the built binary)
set -uo pipefail
hydra=${1:?usage: bf16.sh path/to/hydra}
tiny="$(cd "$(dirname "$0")/../fixtures/tokenizer" && pwd)/tiny.tokenizer.json"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

small_config "$dir/config.json"
"$hydra" init --config "$dir/config.json" --seed 1 --out "$dir/model" >/dev/null || { echo "FAIL: init"; exit 1; }
model="$dir/model"

# forward: both dtypes run and give logits of the same shape; bf16's differ (rounded weights) and are
# the same bytes on every run.
expect 0 "logits \[3, 1, 4, 320\]" -- "$hydra" forward "$model" --tokens "1,2,3,4" --out "$dir/f32.npy"
expect 0 "logits \[3, 1, 4, 320\]" -- "$hydra" forward "$model" --tokens "1,2,3,4" --dtype bf16 --out "$dir/bf16.npy"
check "bf16 logits differ from float32 (the weights were rounded)" -- bash -c "! cmp -s '$dir/f32.npy' '$dir/bf16.npy'"
check "bf16 logits are the same file on every run" -- bash -c \
  "'$hydra' forward '$model' --tokens 1,2,3,4 --dtype bfloat16 --out '$dir/again.npy' >/dev/null && cmp -s '$dir/bf16.npy' '$dir/again.npy'"

# eval: the loss within 1% of float32's.
seq 1 400 | tr '\n' ' ' >"$dir/val.txt"
"$hydra" tokenize --tokenizer "$tiny" "$dir/val.txt" --out "$dir/val.bin" >/dev/null || { echo "FAIL: tokenize"; exit 1; }
loss() { "$hydra" eval "$model" --data "$dir/val.bin" --seq 16 --json "$@" | sed -n 's/.*"loss": *\([0-9.]*\).*/\1/p' | head -1; }
l32=$(loss)
l16=$(loss --dtype bf16)
check "eval loss in bf16 ($l16) within 1% of float32 ($l32)" -- awk -v a="$l32" -v b="$l16" \
  'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && b > 0 && d <= 0.01 * a) }'

# generate: the kernel path is named; the two paths give the same ids.
expect 0 "bf16 kernel: " -- "$hydra" generate "$model" --tokens 1,2,3 --max-new-tokens 8 --temperature 0 --dtype bf16
EXPECT_FIXED=1 expect 0 "bf16 kernel: portable" -- env HYDRA_SIMD=portable "$hydra" generate "$model" --tokens 1,2,3 \
  --max-new-tokens 8 --temperature 0 --dtype bf16
auto=$("$hydra" generate "$model" --tokens 1,2,3 --max-new-tokens 8 --temperature 0 --dtype bf16 2>/dev/null)
portable=$(HYDRA_SIMD=portable "$hydra" generate "$model" --tokens 1,2,3 --max-new-tokens 8 --temperature 0 --dtype bf16 2>/dev/null)
check "generate --dtype bf16 gives the same ids on both kernel paths ($auto / $portable)" test -n "$auto" -a "$auto" == "$portable"
expect 2 "HYDRA_SIMD='avx9' is not understood" -- env HYDRA_SIMD=avx9 "$hydra" generate "$model" --tokens 1,2,3 \
  --max-new-tokens 2 --temperature 0 --dtype bf16

# convert --dtype bf16: BF16 matrices, half the file; loads as float32 (widened) and in place as bf16,
# giving the same logits as the float32 conversion loaded with --dtype bf16.
hf="$(cd "$(dirname "$0")/../fixtures/hf_olmo2_tiny" && pwd)"
expect 0 "matrices written as BF16" -- "$hydra" convert "$hf" --out "$dir/c16" --n-heads 2 --heads-depth 1 --dtype bf16
"$hydra" convert "$hf" --out "$dir/c32" --n-heads 2 --heads-depth 1 >/dev/null || { echo "FAIL: convert"; exit 1; }
s16=$(stat -c %s "$dir/c16/model.safetensors")
s32=$(stat -c %s "$dir/c32/model.safetensors")
check "the BF16 directory's weights ($s16 bytes) are about half the float32 ones ($s32)" test $((s16 * 100 / s32)) -le 55
"$hydra" forward "$dir/c16" --tokens "1,2,3" --dtype bf16 --out "$dir/c16.npy" >/dev/null || { echo "FAIL: forward c16"; exit 1; }
"$hydra" forward "$dir/c32" --tokens "1,2,3" --dtype bf16 --out "$dir/c32.npy" >/dev/null || { echo "FAIL: forward c32"; exit 1; }
check "BF16 directory in place = float32 directory rounded at load" cmp -s "$dir/c16.npy" "$dir/c32.npy"
expect 0 "logits \[2, 1, 3, " -- "$hydra" forward "$dir/c16" --tokens "1,2,3" --out "$dir/c16w.npy"

# Bad values name themselves; training refuses bfloat16.
expect 2 "expected fp32 or bf16, got 'fp16'" -- "$hydra" forward "$model" --tokens 1,2 --dtype fp16 --out "$dir/x.npy"
expect 2 "expected fp32 or bf16, got 'half'" -- "$hydra" eval "$model" --data "$dir/val.bin" --dtype half
expect 2 "expected fp32 or bf16, got 'int8'" -- "$hydra" generate "$model" --tokens 1 --dtype int8
expect 2 "expected fp32 or bf16, got 'bf8'" -- "$hydra" convert "$dir/nowhere" --out "$dir/c" --dtype bf8
expect 2 "bfloat16 weights are for inference" -- "$hydra" train "$model" --out "$dir/run" --data "$dir/val.bin" \
  --steps 1 --batch 1 --seq 8 --dtype bf16

if [[ $fail -ne 0 ]]; then
  echo "bf16.sh: $fail check(s) failed" >&2
  exit 1
fi
echo "bf16.sh: ok ($pass checks)"
