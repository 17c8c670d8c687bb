#!/usr/bin/env bash
# Regenerates the trained-tokenizer fixtures in tests/fixtures/tokenizer/:
#   trained.tokenizer.json  `hydra tokenizer-train prose.txt --vocab-size 512` (the tests check that
#                           training again gives these exact bytes)
#   trained_ids.json        the ids HuggingFace's tokenizers.js (@huggingface/tokenizers, pinned) gives
#                           for every text of expected_ids.json's GPT-2 cases and a few more
#                           (scripts/trained_tokenizer_ids.mjs)
# Needs a built hydra, node and npm, and the network once; installs into a temporary directory outside
# the repository. CI does not run this: the outputs are committed.
#
#   bash scripts/make_trained_tokenizer_fixture.sh path/to/hydra [work-dir]    (default /tmp/hydra-tokfix)
set -euo pipefail
hydra=${1:?usage: make_trained_tokenizer_fixture.sh path/to/hydra [work-dir]}
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${2:-/tmp/hydra-tokfix}
out="$repo/tests/fixtures/tokenizer"
"$hydra" tokenizer-train "$out/prose.txt" --vocab-size 512 --out "$out/trained.tokenizer.json"
mkdir -p "$work"
(cd "$work" && [[ -f package.json ]] || npm init -y >/dev/null)
(cd "$work" && npm install --no-audit --no-fund @huggingface/tokenizers@0.2.0 >/dev/null)
node "$repo/scripts/trained_tokenizer_ids.mjs" "$work/node_modules" "$out"
ls -l "$out/trained.tokenizer.json" "$out/trained_ids.json"
