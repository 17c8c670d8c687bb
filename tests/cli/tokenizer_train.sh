#!/usr/bin/env bash
# hydra tokenizer-train through the real binary: training on prose.txt gives the committed fixture byte
# for byte (whose ids tokenizers.js agrees with: test_io_tokenizer), the result works with hydra tokenize
# and round-trips, several files, an early stop reported, and bad input exits 2 with one message and
# leaves an existing output untouched.
#
#   bash tests/cli/tokenizer_train.sh path/to/hydra      (CTest passes the built binary)
set -uo pipefail
hydra=${1:?usage: tokenizer_train.sh path/to/hydra}
fixtures="$(cd "$(dirname "$0")/../fixtures/tokenizer" && pwd)"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
EXPECT_FIXED=1
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

expect 0 "trained 512 tokens (255 merges) on 4532 bytes in 1 file" -- \
  "$hydra" tokenizer-train "$fixtures/prose.txt" --vocab-size 512 --out "$dir/t.json"
check "prose.txt gives the committed tokenizer byte for byte" cmp -s "$dir/t.json" "$fixtures/trained.tokenizer.json"
ls -a "$dir" | grep -q '\.tmp' && { echo "FAIL: temp files left behind"; fail=$((fail + 1)); }

# It is a tokenizer hydra tokenize loads; the ids decode back (through the ids' bytes) to the text.
printf 'The head of the trunk, 1234 tokens.\n' >"$dir/a.txt"
expect 0 "wrote" -- "$hydra" tokenize --tokenizer "$dir/t.json" "$dir/a.txt" --append-eos --out "$dir/a.bin"
ids=$(od -An -v -tu2 "$dir/a.bin" | xargs)
check "<|endoftext|> is the last id, 511 ($ids)" test "${ids##* }" = 511
check "fewer ids than bytes ($ids)" test "$(wc -w <<<"$ids")" -lt 37

# Several files; a vocabulary larger than the text supports stops early and says so.
printf 'abc abc abc\n' >"$dir/b.txt"
expect 0 "in 2 files" -- "$hydra" tokenizer-train "$dir/a.txt" "$dir/b.txt" --vocab-size 300 --out "$dir/two.json"
expect 0 "note: stopped at" -- "$hydra" tokenizer-train "$dir/b.txt" --vocab-size 4096 --out "$dir/few.json"
expect 0 "wrote" -- "$hydra" tokenize --tokenizer "$dir/few.json" "$dir/b.txt" --out "$dir/b.bin"

# Bad input: exit 2, one message, the existing output untouched.
cp "$dir/t.json" "$dir/before.json"
printf 'ok\n\xff\n' >"$dir/bad.txt"
bad() {  # bad PATTERN args...
  local pattern=$1 out rc
  shift
  out=$("$hydra" tokenizer-train "$@" 2>&1)
  rc=$?
  if [[ $rc -ne 2 || $(wc -l <<<"$out") -ne 1 ]] || ! grep -qF -- "$pattern" <<<"$out"; then
    echo "FAIL: 'tokenizer-train $*' exited $rc (want 2, one line with '$pattern'):"
    echo "$out" | head -5
    fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
}
bad "invalid UTF-8 in $dir/bad.txt at byte offset 3 (byte 0xFF)" "$dir/a.txt" "$dir/bad.txt" --vocab-size 300 --out "$dir/t.json"
bad "cannot open input file $dir/missing.txt" "$dir/missing.txt" --vocab-size 300 --out "$dir/t.json"
bad "cannot read input file $dir" "$dir" --vocab-size 300 --out "$dir/t.json"
bad "expected a whole number from 257" "$dir/a.txt" --vocab-size 100 --out "$dir/t.json"
bad "--vocab-size is required" "$dir/a.txt" --out "$dir/t.json"
bad "cannot" "$dir/a.txt" --vocab-size 300 --out "$dir/no/such/dir/t.json"
check "failed runs left the output untouched" cmp -s "$dir/t.json" "$dir/before.json"

if [[ $fail -ne 0 ]]; then
  echo "tokenizer_train.sh: $fail check(s) failed" >&2
  exit 1
fi
echo "tokenizer_train.sh: ok ($pass checks)"
