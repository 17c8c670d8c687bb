#!/usr/bin/env bash
# LoRA adapters through the real binary: a model directory with adapter files (written here byte by
# byte: a rank-1 adapter on one linear of head 0) is applied by forward, shown by info, folded by
# merge-lora and by export; damaged adapter files and misuse exit 2 with a message and leave no output.
set -uo pipefail
hydra="$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

# float32 values of a .npy file, one per line (the data starts after the 10-byte preamble and the header).
npy_floats() {
  local header_len
  header_len=$(od -An -tu2 -j8 -N2 "$1" | tr -d ' ')
  od -An -v -tf4 -j $((10 + header_len)) "$1" | tr -s ' ' '\n' | grep -v '^$'
}
# Largest |a - b| over two .npy files of float32 values.
max_abs_diff() {
  paste <(npy_floats "$1") <(npy_floats "$2") | awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { printf "%.9g\n", m }'
}

# A small model: 2 heads of 1 block on a 1-block trunk, d 8, FFN 16, vocab 32.
cat >"$dir/config.json" <<'EOF'
{"format_version": 1, "n_heads": 2, "trunk_layers": 1, "head_layers": 1,
 "base_config": {"vocab_size": 32, "d_model": 8, "n_layers": 2, "n_heads": 2, "n_kv_heads": 2, "head_dim": 4,
                 "hidden_size": 16, "rope_theta": 10000.0, "norm_eps": 1e-6, "qk_norm": true}}
EOF
expect 0 "wrote" -- "$hydra" init --config "$dir/config.json" --seed 1 --out "$dir/base"

# The adapter of heads.0.blocks.0.feed_forward.w2 (in 16, out 8), rank 1, alpha 2 (scaling 2):
# A = 0.25 everywhere (float32 bytes 00 00 80 3e), B = 0.5 everywhere (00 00 00 3f).
linear="heads.0.blocks.0.feed_forward.w2"
write_adapters() {  # write_adapters DIR [RANK_IN_CONFIG] [LINEAR_IN_CONFIG]
  local out=$1 rank=${2:-1} named=${3:-$linear}
  local header="{\"$linear.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":[1,16],\"data_offsets\":[0,64]},\"$linear.lora_B.weight\":{\"dtype\":\"F32\",\"shape\":[8,1],\"data_offsets\":[64,96]}}"
  local n=${#header}
  {
    printf "\\x$(printf %02x $((n & 255)))\\x$(printf %02x $((n >> 8)))\\x00\\x00\\x00\\x00\\x00\\x00"
    printf '%s' "$header"
    for _ in $(seq 16); do printf '\x00\x00\x80\x3e'; done
    for _ in $(seq 8); do printf '\x00\x00\x00\x3f'; done
  } >"$out/adapters.safetensors"
  printf '{"format": "hydra-lora", "format_version": 1, "rank": %s, "alpha": 2.0, "dropout": 0.0, "targets": ["%s"], "linears": ["%s"]}\n' \
    "$rank" "$named" "$named" >"$out/adapter_config.json"
}
cp -r "$dir/base" "$dir/adapted"
write_adapters "$dir/adapted"

# info shows the adapters (and counts them: 16 + 8 parameters).
expect 0 "lora:  rank 1, alpha 2, dropout 0, targets $linear: 1 linears in heads 0" -- "$hydra" info "$dir/adapted"
expect 0 "LoRA adapters  *24" -- "$hydra" info "$dir/adapted"

# forward applies the adapter to head 0 only; head 1 is bit-identical to the base model's.
tokens="1,2,3,4;5,6,7,8"
expect 0 "logits \[1, 2, 4, 32\]" -- "$hydra" forward "$dir/base" --tokens "$tokens" --heads 0 --out "$dir/base0.npy"
expect 0 "logits" -- "$hydra" forward "$dir/base" --tokens "$tokens" --heads 1 --out "$dir/base1.npy"
expect 0 "logits" -- "$hydra" forward "$dir/adapted" --tokens "$tokens" --heads 0 --out "$dir/adapted0.npy"
expect 0 "logits" -- "$hydra" forward "$dir/adapted" --tokens "$tokens" --heads 1 --out "$dir/adapted1.npy"
check "head 1 is untouched by head 0's adapter" -- cmp -s "$dir/base1.npy" "$dir/adapted1.npy"
check "head 0's adapter changes its logits" -- awk -v d="$(max_abs_diff "$dir/base0.npy" "$dir/adapted0.npy")" 'BEGIN { exit !(d > 1e-3) }'
"$hydra" --threads 1 forward "$dir/adapted" --tokens "$tokens" --heads 0 --out "$dir/one.npy" >/dev/null
check "1 thread and all threads give the same adapted logits" -- cmp -s "$dir/adapted0.npy" "$dir/one.npy"

# merge-lora: a plain model directory whose logits are the adapted model's within 1e-5.
expect 0 "folded 1 adapters (rank 1, alpha 2, heads 0)" -- "$hydra" merge-lora "$dir/adapted" --out "$dir/merged"
check "the merged directory has no adapter files" -- test ! -e "$dir/merged/adapter_config.json" -a ! -e "$dir/merged/adapters.safetensors"
check "the merged config is the base config" -- cmp -s "$dir/base/config.json" "$dir/merged/config.json"
expect 0 "logits" -- "$hydra" forward "$dir/merged" --tokens "$tokens" --heads 0 --out "$dir/merged0.npy"
diff_merged=$(max_abs_diff "$dir/adapted0.npy" "$dir/merged0.npy")
check "merged and adapted logits agree within 1e-5 (max diff $diff_merged)" -- awk -v d="$diff_merged" 'BEGIN { exit !(d <= 1e-5) }'
expect 0 "logits" -- "$hydra" forward "$dir/merged" --tokens "$tokens" --heads 1 --out "$dir/merged1.npy"
check "merging leaves head 1 bit-identical" -- cmp -s "$dir/base1.npy" "$dir/merged1.npy"
expect 2 "has no LoRA adapters" -- "$hydra" merge-lora "$dir/merged" --out "$dir/twice"
check "a refused merge-lora writes nothing" -- test ! -e "$dir/twice"
expect 2 "already exists" -- "$hydra" merge-lora "$dir/adapted" --out "$dir/merged"

# export merges first: the same HF weights as exporting the merged directory.
expect 0 "merged 1 LoRA adapters" -- "$hydra" export "$dir/adapted" --head 0 --out "$dir/hf_adapted"
expect 0 "model.safetensors" -- "$hydra" export "$dir/merged" --head 0 --out "$dir/hf_merged"
check "export of the adapted model = export of the merged model" -- cmp -s "$dir/hf_adapted/model.safetensors" "$dir/hf_merged/model.safetensors"
expect 0 "LoRA adapters are merged" -- "$hydra" export --help

# Damaged adapter files: exit 2 naming the file (and the tensor or linear), no output written.
bad() {  # bad NAME: a copy of the base model to damage
  cp -r "$dir/base" "$dir/$1"
  echo "$dir/$1"
}
d=$(bad no_weights); write_adapters "$d"; rm "$d/adapters.safetensors"
expect 2 "adapters.safetensors is missing" -- "$hydra" forward "$d" --tokens "$tokens" --out "$dir/bad.npy"
d=$(bad no_config); write_adapters "$d"; rm "$d/adapter_config.json"
expect 2 "without adapter_config.json" -- "$hydra" forward "$d" --tokens "$tokens" --out "$dir/bad.npy"
expect 2 "without adapter_config.json" -- "$hydra" merge-lora "$d" --out "$dir/bad_merge"
d=$(bad wrong_rank); write_adapters "$d" 2
expect 2 "tensor '$linear.lora_A.weight' has shape \[1, 16\] but rank 2" -- "$hydra" forward "$d" --tokens "$tokens" --out "$dir/bad.npy"
d=$(bad no_such_linear); write_adapters "$d" 1 "heads.0.blocks.3.feed_forward.w2"
expect 2 "not a linear of this model" -- "$hydra" info "$d"
d=$(bad in_trunk); write_adapters "$d" 1 "trunk.blocks.0.feed_forward.w2"
expect 2 "in the trunk" -- "$hydra" export "$d" --head 0 --out "$dir/bad_export"
check "no output after the failures" -- test ! -e "$dir/bad.npy" -a ! -e "$dir/bad_merge" -a ! -e "$dir/bad_export"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
