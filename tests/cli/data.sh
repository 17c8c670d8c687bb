#!/usr/bin/env bash
# hydra data-info through the real binary: each token format is described with its count and id range,
# and every bad file exits with code 2 and a message naming the file (never a crash).
#
#   bash tests/cli/data.sh path/to/hydra      (CTest passes the built binary)
set -uo pipefail
hydra=${1:?usage: data.sh path/to/hydra}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

# Raw uint16 ids 1, 2, 50255 (little-endian), as nanoGPT's train.bin.
printf '\x01\x00\x02\x00\x4f\xc4' >"$dir/train.bin"
expect 0 "tokens:  3" -- "$hydra" data-info "$dir/train.bin" --vocab-size 50304
expect 0 "max id:  50255" -- "$hydra" data-info "$dir/train.bin" --vocab-size 50304
expect 0 "dtype:   uint16" -- "$hydra" data-info "$dir/train.bin" --token-dtype uint16
expect 0 "format:  raw" -- "$hydra" data-info "$dir/train.bin" --vocab-size 50304 --window 3
# The same 4 first bytes as one uint32 id: 131073.
head -c 4 "$dir/train.bin" >"$dir/u32.bin"
expect 0 "max id:  131073" -- "$hydra" data-info "$dir/u32.bin" --token-dtype uint32
# An llm.c shard, version 1: magic 20240520, version 1, 3 tokens, then 253 zero ints, then the ids.
{ printf '\x88\xd8\x34\x01\x01\x00\x00\x00\x03\x00\x00\x00'; head -c 1012 /dev/zero; printf '\x05\x00\x06\x00\x07\x00'; } >"$dir/shard.bin"
expect 0 "format:  llm.c shard" -- "$hydra" data-info "$dir/shard.bin"
expect 0 "min id:  5" -- "$hydra" data-info "$dir/shard.bin" --vocab-size 8
if command -v zstd >/dev/null; then
  zstd -q -o "$dir/shard.bin.zst" "$dir/shard.bin"
  expect 0 "format:  llm.c shard (zstd)" -- "$hydra" data-info "$dir/shard.bin.zst" --vocab-size 8
fi

# Errors: exit 2, the file named, the reason given.
expect 2 "train.bin: token 50255 at position 2 is outside the vocabulary \[0, 1000)" -- "$hydra" data-info "$dir/train.bin" --vocab-size 1000
expect 2 "fewer than one training window of 4 tokens" -- "$hydra" data-info "$dir/train.bin" --vocab-size 50304 --window 4
expect 2 "has no header" -- "$hydra" data-info "$dir/train.bin"
printf '\x01\x00\x02' >"$dir/odd.bin"
expect 2 "odd.bin is 3 bytes, not a multiple of 2" -- "$hydra" data-info "$dir/odd.bin" --vocab-size 50304
head -c 1030 "$dir/shard.bin" | head -c 1028 >"$dir/short_shard.bin"
expect 2 "short_shard.bin: the header says 3 uint16 tokens" -- "$hydra" data-info "$dir/short_shard.bin"
{ printf '\x88\xd8\x34\x01\x07\x00\x00\x00\x00\x00\x00\x00'; head -c 1012 /dev/zero; } >"$dir/badver.bin"
expect 2 "version 7 with magic 20240520" -- "$hydra" data-info "$dir/badver.bin"
printf 'not zstd' >"$dir/fake.zst"
expect 2 "fake.zst: it does not start with the zstd frame magic" -- "$hydra" data-info "$dir/fake.zst" --vocab-size 10
expect 2 "cannot open token file $dir/missing.bin" -- "$hydra" data-info "$dir/missing.bin" --vocab-size 10
expect 2 "--token-dtype" -- "$hydra" data-info "$dir/train.bin" --token-dtype int8
expect 2 "--vocab-size" -- "$hydra" data-info "$dir/train.bin" --vocab-size 0
expect 2 "hydra: error:" -- "$hydra" data-info "$dir/odd.bin" --vocab-size 10

if [[ $fail -ne 0 ]]; then
  echo "data.sh: $fail check(s) failed" >&2
  exit 1
fi
echo "data.sh: ok"
