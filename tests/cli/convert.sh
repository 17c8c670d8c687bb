#!/usr/bin/env bash
# hydra convert / export through the real binary: the HF fixture converts and runs, an exported head
# converts back to the same weights, and every bad input exits 2 with a message and leaves no output
# (an existing output is never touched).
set -uo pipefail
hydra="$1"
fixtures="$(cd "$(dirname "$0")/../fixtures" && pwd)"
hf="$fixtures/hf_olmo2_tiny"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

# Convert (sharded input), run, export head 1 sharded, convert back, run again: same logits.
expect 0 "trunk 2 + 3 heads x 2 blocks" -- "$hydra" convert "$hf" --out "$dir/m" --n-heads 3 --heads-depth 2 --vocab-size 320
expect 0 "logits \[3, 2, 3, 320\]" -- "$hydra" forward "$dir/m" --tokens "0,5,299;7,8,9" --out "$dir/a.npy"
expect 0 "model-00001-of-" -- "$hydra" export "$dir/m" --head 1 --out "$dir/hf" --max-shard-size 100000
check "export wrote an index" -- test -f "$dir/hf/model.safetensors.index.json"
check "export config names Olmo2ForCausalLM" -- grep -q '"Olmo2ForCausalLM"' "$dir/hf/config.json"
expect 0 "trunk 2 + 3 heads x 2 blocks" -- "$hydra" convert "$dir/hf" --out "$dir/m2" --n-heads 3 --heads-depth 2
check "convert(export(m)) has the same weights as m" -- cmp -s "$dir/m/model.safetensors" "$dir/m2/model.safetensors"
expect 0 "model.safetensors" -- "$hydra" export "$dir/m" --head 0 --out "$dir/hf1"
check "a small export is one file" -- test -f "$dir/hf1/model.safetensors" -a ! -e "$dir/hf1/model.safetensors.index.json"
# The defaults: 5 heads of 3 blocks (trunk 1), vocabulary as in the checkpoint.
expect 0 "trunk 1 + 5 heads x 3 blocks" -- "$hydra" convert "$hf" --out "$dir/d"
expect 0 "logits \[5, 1, 2, 300\]" -- "$hydra" forward "$dir/d" --tokens "1,2" --out "$dir/d.npy"

# Bad input: exit 2, one message, no output.
expect 2 "already exists" -- "$hydra" convert "$hf" --out "$dir/m"
expect 2 "config.json" -- "$hydra" convert "$dir/nothing" --out "$dir/x"
mkdir "$dir/broken"
cp "$hf/config.json" "$dir/broken/"
expect 2 "no weights in" -- "$hydra" convert "$dir/broken" --out "$dir/x"
cp "$hf/model.safetensors.index.json" "$hf/model-00001-of-00002.safetensors" "$dir/broken/"
expect 2 "shard 'model-00002-of-00002.safetensors'" -- "$hydra" convert "$dir/broken" --out "$dir/x"
cp "$hf/model-00002-of-00002.safetensors" "$dir/broken/"
sed 's/"tie_word_embeddings": false/"tie_word_embeddings": true/' "$hf/config.json" >"$dir/broken/config.json"
expect 2 "tie_word_embeddings = true is not supported" -- "$hydra" convert "$dir/broken" --out "$dir/x"
sed 's/"rope_scaling": null/"rope_scaling": {"factor": 2.0}/' "$hf/config.json" >"$dir/broken/config.json"
expect 2 "rope_scaling" -- "$hydra" convert "$dir/broken" --out "$dir/x"
sed 's/"attention_bias": false/"attention_bias": true/' "$hf/config.json" >"$dir/broken/config.json"
expect 2 "attention_bias = true" -- "$hydra" convert "$dir/broken" --out "$dir/x"
sed 's/"num_hidden_layers": 4/"num_hidden_layers": 5/' "$hf/config.json" >"$dir/broken/config.json"
expect 2 "missing tensor 'model.layers.4" -- "$hydra" convert "$dir/broken" --out "$dir/x"
echo "{" >"$dir/broken/config.json"
expect 2 "not valid JSON" -- "$hydra" convert "$dir/broken" --out "$dir/x"
cp "$hf/config.json" "$dir/broken/"
head -c 1000 "$hf/model-00002-of-00002.safetensors" >"$dir/broken/model-00002-of-00002.safetensors"
expect 2 "model-00002-of-00002.safetensors" -- "$hydra" convert "$dir/broken" --out "$dir/x"
expect 2 "smaller than the checkpoint's vocab_size 300" -- "$hydra" convert "$hf" --out "$dir/x" --vocab-size 100
expect 2 "--heads-depth 9" -- "$hydra" convert "$hf" --out "$dir/x" --heads-depth 9
expect 2 "--n-heads" -- "$hydra" convert "$hf" --out "$dir/x" --n-heads 0
check "no failed convert left output" -- test ! -e "$dir/x"

expect 2 "--head 3 is outside \[0, 3)" -- "$hydra" export "$dir/m" --head 3 --out "$dir/y"
expect 2 "already exists" -- "$hydra" export "$dir/m" --head 0 --out "$dir/hf"
expect 2 "config.json" -- "$hydra" export "$dir/nothing" --head 0 --out "$dir/y"
expect 2 "--head" -- "$hydra" export "$dir/m" --out "$dir/y"
check "no failed export left output" -- test ! -e "$dir/y"
before=$(cat "$dir/hf/config.json")
"$hydra" export "$dir/m" --head 0 --out "$dir/hf" >/dev/null 2>&1
check "a refused export left the existing output alone" -- test "$before" == "$(cat "$dir/hf/config.json")"
check "no temporary directories left behind" -- test -z "$(find "$dir" -maxdepth 1 -name '*.hydra-tmp-*')"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
