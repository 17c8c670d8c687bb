#!/usr/bin/env bash
# hydra tokenize through the real binary: the raw ids and the sidecar for a small tokenizer whose ids
# can be checked by hand (tests/fixtures/tokenizer/tiny.tokenizer.json), exit code 2 naming the file
# for every kind of bad input with the existing output left untouched, and (when the zstd tool is
# installed) GPT-2's and cl100k's real ids for a short text in uint16 and uint32.
#
#   bash tests/cli/tokenize.sh path/to/hydra      (CTest passes the built binary)
set -uo pipefail
hydra=${1:?usage: tokenize.sh path/to/hydra}
fixtures="$(cd "$(dirname "$0")/../fixtures/tokenizer" && pwd)"
tiny="$fixtures/tiny.tokenizer.json"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

EXPECT_FIXED=1  # patterns below are literal text
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
check() {  # check DESCRIPTION GOT WANT
  if [[ "$2" != "$3" ]]; then
    echo "FAIL: $1: got '$2', expected '$3'"
    fail=$((fail + 1))
  fi
}
ids16() { od -An -v -tu2 "$1" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//'; }
ids32() { od -An -v -tu4 "$1" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//'; }
json_field() { grep -o "\"$2\": [^,]*" "$1" | head -1 | sed 's/.*: //'; }

printf 'abc ab' >"$dir/a.txt"
printf 'x' >"$dir/b.txt"
expect 0 "wrote 2 tokens (uint16)" -- "$hydra" tokenize --tokenizer "$tiny" "$dir/a.txt" --out "$dir/t.bin"
check "ids of 'abc ab'" "$(ids16 "$dir/t.bin")" "257 258"
expect 0 "wrote 5 tokens (uint16) from 2 files" -- \
  "$hydra" tokenize --tokenizer "$tiny" "$dir/a.txt" "$dir/b.txt" --append-eos --out "$dir/t.bin"
check "ids with EOS after each file" "$(ids16 "$dir/t.bin")" "257 258 259 120 259"
side="$dir/t.bin.json"
check "sidecar dtype" "$(json_field "$side" dtype)" '"uint16"'
check "sidecar count" "$(json_field "$side" count)" "5"
check "sidecar eos_id" "$(json_field "$side" eos_id)" "259"
check "sidecar vocab_size" "$(json_field "$side" vocab_size)" "260"
check "sidecar format_version" "$(json_field "$side" format_version)" "1"
check "sidecar tokenizer_sha256" "$(json_field "$side" tokenizer_sha256)" "\"$(sha256sum "$tiny" | cut -d' ' -f1)\""
grep -qF "\"sha256\": \"$(sha256sum "$dir/a.txt" | cut -d' ' -f1)\"" "$side" || { echo "FAIL: sidecar lacks a.txt's sha256"; fail=$((fail + 1)); }
grep -qF '"tokens": 3' "$side" || { echo "FAIL: sidecar lacks a.txt's 3 tokens (2 + EOS)"; fail=$((fail + 1)); }
grep -qF '"bytes": 6' "$side" || { echo "FAIL: sidecar lacks a.txt's 6 bytes"; fail=$((fail + 1)); }
ls -a "$dir" | grep -q 'hydra-tmp-' && { echo "FAIL: temp files left behind"; fail=$((fail + 1)); }

# Special-token text is plain text unless --allow-special.
printf 'ab<|endoftext|>' >"$dir/s.txt"
expect 0 "wrote" -- "$hydra" tokenize --tokenizer "$tiny" "$dir/s.txt" --out "$dir/s.bin"
check "special token as text (its bytes)" "$(ids16 "$dir/s.bin")" "256 60 124 101 110 100 111 102 116 101 120 116 124 62"
expect 0 "wrote" -- "$hydra" tokenize --tokenizer "$tiny" "$dir/s.txt" --allow-special --out "$dir/s.bin"
check "special token allowed" "$(ids16 "$dir/s.bin")" "256 259"

# Bad inputs: exit 2, the file named, the previous output untouched.
cp "$dir/t.bin" "$dir/before.bin"
cp "$side" "$dir/before.json"
printf '{}' >"$dir/empty.json"
printf 'ok\n\xff' >"$dir/bad.txt"
expect 2 "cannot open tokenizer file $dir/none.json" -- "$hydra" tokenize --tokenizer "$dir/none.json" "$dir/a.txt" --out "$dir/t.bin"
expect 2 "invalid tokenizer file $dir/empty.json: missing \"model\"" -- "$hydra" tokenize --tokenizer "$dir/empty.json" "$dir/a.txt" --out "$dir/t.bin"
expect 2 "invalid tokenizer file $dir/a.txt: not valid JSON" -- "$hydra" tokenize --tokenizer "$dir/a.txt" "$dir/a.txt" --out "$dir/t.bin"
expect 2 "cannot open input file $dir/missing.txt" -- "$hydra" tokenize --tokenizer "$tiny" "$dir/a.txt" "$dir/missing.txt" --out "$dir/t.bin"
expect 2 "cannot read input file $dir" -- "$hydra" tokenize --tokenizer "$tiny" "$dir" --out "$dir/t.bin"
expect 2 "invalid UTF-8 in $dir/bad.txt at byte offset 3 (byte 0xFF)" -- "$hydra" tokenize --tokenizer "$tiny" "$dir/a.txt" "$dir/bad.txt" --out "$dir/t.bin"
expect 2 "has no token '<|eos|>'" -- "$hydra" tokenize --tokenizer "$tiny" "$dir/a.txt" --append-eos --eos-token "<|eos|>" --out "$dir/t.bin"
expect 2 "cannot" -- "$hydra" tokenize --tokenizer "$tiny" "$dir/a.txt" --out "$dir/no/such/dir/t.bin"
expect 2 "--out" -- "$hydra" tokenize --tokenizer "$tiny" "$dir/a.txt"
expect 2 "hydra: error:" -- "$hydra" tokenize --tokenizer "$dir/empty.json" "$dir/a.txt" --out "$dir/t.bin"
cmp -s "$dir/t.bin" "$dir/before.bin" || { echo "FAIL: a failed run changed t.bin"; fail=$((fail + 1)); }
cmp -s "$side" "$dir/before.json" || { echo "FAIL: a failed run changed t.bin.json"; fail=$((fail + 1)); }

# Real tokenizers (the fixtures are zstd-compressed; skipped without the zstd tool).
if command -v zstd >/dev/null; then
  zstd -q -d "$fixtures/gpt2.tokenizer.json.zst" -o "$dir/gpt2.json"
  zstd -q -d "$fixtures/cl100k.tokenizer.json.zst" -o "$dir/cl100k.json"
  printf 'Hello world' >"$dir/h.txt"
  expect 0 "(uint16)" -- "$hydra" tokenize --tokenizer "$dir/gpt2.json" "$dir/h.txt" --append-eos --out "$dir/g.bin"
  check "GPT-2 ids" "$(ids16 "$dir/g.bin")" "15496 995 50256"
  expect 0 "(uint32)" -- "$hydra" tokenize --tokenizer "$dir/cl100k.json" "$dir/h.txt" --append-eos --out "$dir/c.bin"
  check "cl100k ids" "$(ids32 "$dir/c.bin")" "9906 1917 100257"
  check "cl100k sidecar dtype" "$(json_field "$dir/c.bin.json" dtype)" '"uint32"'
else
  echo "tokenize.sh: zstd tool not installed; skipping the GPT-2 and cl100k checks"
fi

if [[ $fail -ne 0 ]]; then
  echo "tokenize.sh: $fail check(s) failed" >&2
  exit 1
fi
echo "tokenize.sh: ok"
