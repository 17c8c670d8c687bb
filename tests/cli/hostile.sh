#!/usr/bin/env bash
# Hostile inputs through the real binary, one block per class: files that are not files (FIFOs,
# /dev/zero, symlinks to them), sizes a config promises, legal but hostile JSON, regex and tokenizer
# blow-up, outputs that fail half-way (a full disk, an output that is an input, a signal at a chosen
# point), temp names that are not ours, and weights of the wrong dtype or with NaNs. Every case asserts
# the exit code, the message, and that the outputs that existed before are byte-identical afterwards;
# `timeout` turns a hang into a failure.
#
#   bash tests/cli/hostile.sh path/to/hydra      (CTest passes the built binary)
set -uo pipefail
hydra=${1:?usage: hostile.sh path/to/hydra}
fixtures="$(cd "$(dirname "$0")/../fixtures" && pwd)"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

EXPECT_FIXED=1  # patterns below are literal text
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
h() { timeout 60 "$hydra" "$@"; }
same() {  # same DESCRIPTION FILE COPY: FILE is byte-identical to COPY
  if cmp -s "$2" "$3"; then pass=$((pass + 1)); else echo "FAIL: $1: $2 changed"; fail=$((fail + 1)); fi
}
no_temps() {  # no_temps DESCRIPTION DIR: no Hydra temp file or directory left in DIR
  if [[ -z "$(find "$2" -name '*.hydra-tmp-*')" ]]; then pass=$((pass + 1)); else
    echo "FAIL: $1: temps left: $(find "$2" -name '*.hydra-tmp-*')"; fail=$((fail + 1)); fi
}

# ---- setup: a model, its outputs, token data, a text, the tiny tokenizer, an HF checkpoint ----
h init --preset tiny --seed 1 --out "$dir/m" >/dev/null || { echo "FAIL: init"; exit 1; }
h forward "$dir/m" --tokens "1,2,3" --hidden-heads 0 --hidden-out "$dir/h.npy" --out "$dir/l.npy" >/dev/null
cp "$dir/l.npy" "$dir/l.keep"
cp "$dir/h.npy" "$dir/h.keep"
printf '\x01\x00\x02\x00' >"$dir/ids.bin"
printf 'ab abc ab' >"$dir/a.txt"
tok="$fixtures/tokenizer/tiny.tokenizer.json"
h tokenize --tokenizer "$tok" "$dir/a.txt" --out "$dir/t.bin" >/dev/null
cp "$dir/t.bin" "$dir/t.keep"
cp "$dir/t.bin.json" "$dir/t.json.keep"
h forward "$dir/m" --tokens "1,2" --out "$dir/ids.npy.src" >/dev/null  # any .npy will do as a residual shape probe

# ---- files that are not files: refused at once, whatever the reader ----
mkfifo "$dir/fifo"
ln -s /dev/zero "$dir/zero-link"
ln -s "$dir/fifo" "$dir/fifo-link"
not_a_file() {  # the message for a special file
  case "$1" in *fifo*) echo "it is a FIFO (named pipe), not a regular file" ;; *) echo "it is a character device, not a regular file" ;; esac
}
# Every reader, with a FIFO and with /dev/zero.
for special in "$dir/fifo" /dev/zero; do
  what=$(not_a_file "$special")
  # A model directory whose config.json, then whose model.safetensors, is the special file.
  for part in config.json model.safetensors; do
    rm -rf "$dir/sm" && mkdir "$dir/sm" && cp "$dir/m/config.json" "$dir/m/model.safetensors" "$dir/sm/"
    rm "$dir/sm/$part" && ln -s "$special" "$dir/sm/$part"
    expect 2 "$what" -- h forward "$dir/sm" --tokens "1,2,3" --out "$dir/l.npy"
    expect 2 "$what" -- h info "$dir/sm"
    expect 2 "$what" -- h export "$dir/sm" --head 0 --out "$dir/never"
  done
  expect 2 "$what" -- h forward "$dir/m" --tokens-file "$special" --out "$dir/l.npy"
  expect 2 "$what" -- h forward "$dir/m" --tokens "1,2,3" --residual "$special" --out "$dir/l.npy"
  expect 2 "$what" -- h data-info "$special" --vocab-size 10
  expect 2 "$what" -- h tokenize --tokenizer "$special" "$dir/a.txt" --out "$dir/t.bin"
  expect 2 "$what" -- h tokenize --tokenizer "$tok" "$special" --out "$dir/t.bin"
  expect 2 "$what" -- h init --config "$special" --out "$dir/never"
  rm -rf "$dir/hf" && cp -r "$fixtures/hf_olmo2_tiny" "$dir/hf"
  rm "$dir/hf/config.json" && ln -s "$special" "$dir/hf/config.json"
  expect 2 "$what" -- h convert "$dir/hf" --out "$dir/never"
  rm -rf "$dir/hf" && cp -r "$fixtures/hf_olmo2_tiny" "$dir/hf"
  rm "$dir/hf/model-00002-of-00002.safetensors" && ln -s "$special" "$dir/hf/model-00002-of-00002.safetensors"
  expect 2 "$what" -- h convert "$dir/hf" --out "$dir/never"
done
# Symlinks to them, given directly (the model directories above already reach them through symlinks).
for special in "$dir/zero-link" "$dir/fifo-link"; do
  what=$(not_a_file "$special")
  expect 2 "$what" -- h data-info "$special" --vocab-size 10
  expect 2 "$what" -- h tokenize --tokenizer "$tok" "$special" --out "$dir/t.bin"
  expect 2 "$what" -- h forward "$dir/m" --tokens-file "$special" --out "$dir/l.npy"
done
same "special inputs" "$dir/l.npy" "$dir/l.keep"
same "special inputs" "$dir/t.bin" "$dir/t.keep"
[[ ! -e "$dir/never" ]] || { echo "FAIL: a refused command wrote $dir/never"; fail=$((fail + 1)); }

# ---- sizes a config promises: refused with the file and the field, before building ----
config_with() {  # config_with DIR PERL-SUBSTITUTION: a model directory with m's weights and an edited config
  rm -rf "$1" && mkdir "$1" && cp "$dir/m/model.safetensors" "$1/"
  perl -0777 -pe "$2" "$dir/m/config.json" >"$1/config.json"
}
config_with "$dir/c1" 's/"n_layers": 4/"n_layers": 1000000000/; s/"trunk_layers": 2/"trunk_layers": 999999998/'
expect 2 "$dir/c1/config.json: TransformerConfig.n_layers = 1000000000: must be at most 4096" -- h info "$dir/c1"
expect 2 "n_layers = 1000000000" -- h forward "$dir/c1" --tokens "1" --out "$dir/l.npy"
expect 2 "n_layers = 1000000000" -- h init --config "$dir/c1/config.json" --out "$dir/never"
config_with "$dir/c2" 's/"n_heads": 3/"n_heads": 1000000000/'
expect 2 "$dir/c2/config.json: HydraTransformerConfig.n_heads = 1000000000: must be at most 1024" -- h info "$dir/c2"
config_with "$dir/c3" 's/"vocab_size": 4096/"vocab_size": 1099511627776/'
expect 2 "vocab_size = 1099511627776: must be at most 2147483648" -- h forward "$dir/c3" --tokens "1" --out "$dir/l.npy"
config_with "$dir/c4" 's/"d_model": 256/"d_model": 2147483648/; s/"hidden_size": 1024/"hidden_size": 2147483648/; s/"head_dim": 64/"head_dim": 536870912/'
expect 2 "the parameter count overflows int64" -- h info "$dir/c4"
# 2^45 parameters: a valid config whose slab no machine here holds. init refuses before allocating;
# info and forward refuse from the weight header (m's tiny weights), allocating nothing large.
config_with "$dir/c5" 's/"vocab_size": 4096/"vocab_size": 2147483648/; s/"d_model": 256/"d_model": 8192/; s/"head_dim": 64/"head_dim": 2048/'
expect 2 "building the model (" -- h init --config "$dir/c5/config.json" --out "$dir/never"
expect 2 "more than this machine's memory" -- h init --config "$dir/c5/config.json" --out "$dir/never"
for cmd in info forward; do
  args=("$dir/c5")
  [[ $cmd == forward ]] && args+=(--tokens "1" --out "$dir/l.npy")
  rss=$(/usr/bin/time -f '%M' "$hydra" "$cmd" "${args[@]}" 2>&1 >/dev/null | tail -1)
  if [[ "$rss" =~ ^[0-9]+$ && "$rss" -lt 400000 ]]; then pass=$((pass + 1)); else
    echo "FAIL: $cmd on a 2^45-parameter config used ${rss} KB"; fail=$((fail + 1)); fi
  expect 2 "does not hold the model its config.json describes" -- h "$cmd" "${args[@]}"
done
# A smaller machine (HYDRA_MEMORY_LIMIT_MB plays one): init refuses the slab, forward refuses a tensor.
expect 2 "building the model (75" -- env HYDRA_MEMORY_LIMIT_MB=200 timeout 60 "$hydra" init --preset small --out "$dir/never"
expect 2 "more than this machine's memory (200.00 MiB)" -- env HYDRA_MEMORY_LIMIT_MB=200 timeout 60 "$hydra" init --preset small --out "$dir/never"
# 1500 tokens: the logits of three heads (70 MiB) are the first tensor past 60 MiB; the model (42 MB)
# fits. Few tokens keep the forward before it short under the sanitizers.
ids=$(seq -s, 1 1500)
expect 2 "a tensor needs 70.31 MiB (73728000 bytes), more than this machine's memory (60.00 MiB)" -- \
  env HYDRA_MEMORY_LIMIT_MB=60 timeout 60 "$hydra" forward "$dir/m" --tokens "$ids" --out "$dir/l.npy"
head -c 1048576 /dev/zero | tr '\0' 'y' >"$dir/mib.txt"
expect 2 "tokenizing $dir/mib.txt needs 2.00 MiB (2097152 bytes), more than this machine's memory (1.00 MiB)" -- \
  env HYDRA_MEMORY_LIMIT_MB=1 timeout 60 "$hydra" tokenize --tokenizer "$tok" "$dir/mib.txt" --out "$dir/t.bin"
# The 75M-parameter preset's config beside the tiny weights: refused from the header, no 300 MB model built.
config_with "$dir/c6" 's/"vocab_size": 4096/"vocab_size": 16384/; s/"d_model": 256/"d_model": 512/; s/"hidden_size": 1024/"hidden_size": 2048/; s/"head_dim": 64/"head_dim": 128/'
rss=$(/usr/bin/time -f '%M' "$hydra" forward "$dir/c6" --tokens 1 --out "$dir/l.npy" 2>&1 >/dev/null | tail -1)
if [[ "$rss" =~ ^[0-9]+$ && "$rss" -lt 250000 ]]; then pass=$((pass + 1)); else
  echo "FAIL: forward on a mismatched config used ${rss} KB"; fail=$((fail + 1)); fi
expect 2 "with another shape: trunk.embeddings.weight (config [16384, 512], file [4096, 256])" -- \
  h forward "$dir/c6" --tokens 1 --out "$dir/l.npy"
same "size configs" "$dir/l.npy" "$dir/l.keep"

# ---- legal but hostile JSON ----
rm -rf "$dir/j" && mkdir "$dir/j" && cp "$dir/m/model.safetensors" "$dir/j/"
{ head -c 100000 /dev/zero | tr '\0' '['; head -c 100000 /dev/zero | tr '\0' ']'; } >"$dir/j/config.json"
expect 2 "$dir/j/config.json: JSON nested deeper than 64 levels" -- h info "$dir/j"
perl -0777 -pe 's/"n_heads": 3,/"n_heads": 3, "n_heads": 2,/' "$dir/m/config.json" >"$dir/j/config.json"
expect 2 "$dir/j/config.json: names 'n_heads' twice" -- h forward "$dir/j" --tokens 1 --out "$dir/l.npy"
perl -0777 -pe 's/"normalizer": null,/"normalizer": null, "normalizer": null,/' "$tok" >"$dir/dup.json"
expect 2 "invalid tokenizer file $dir/dup.json: names 'normalizer' twice" -- h tokenize --tokenizer "$dir/dup.json" "$dir/a.txt" --out "$dir/t.bin"
{ head -c 100000 /dev/zero | tr '\0' '{' | sed 's/{/{"a":/g'; echo -n 1; head -c 100000 /dev/zero | tr '\0' '}'; } >"$dir/deep.json"
expect 2 "nested deeper than 64" -- h tokenize --tokenizer "$dir/deep.json" "$dir/a.txt" --out "$dir/t.bin"

# A name of 1 MB in a weight header: the message quoting it is cut, not printed whole.
rm -rf "$dir/n" && mkdir "$dir/n" && cp "$dir/m/config.json" "$dir/n/"
perl -e '$h = "{\"" . ("a" x 1048576) . "\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
         print pack("Q<", length $h), $h, "\0\0\0\0"' >"$dir/n/model.safetensors"
out=$(h forward "$dir/n" --tokens 1 --out "$dir/l.npy" 2>&1)
code=$?
if [[ $code -eq 2 && ${#out} -lt 5000 && "$out" == *"more characters)"* ]]; then pass=$((pass + 1)); else
  echo "FAIL: a 1 MB tensor name: exit $code, ${#out} characters of message"; fail=$((fail + 1)); fi

# ---- regex and tokenizer blow-up ----
split_tokenizer() {  # split_tokenizer OUT FILE-OF-PRETOKENIZERS-JSON
  STEPS="$2" perl -0777 -pe 'BEGIN { open(my $f, "<", $ENV{STEPS}) or die; local $/; $steps = <$f> }
    s/"pre_tokenizer": \{.*?\},\n "post_processor"/"pre_tokenizer": {"type": "Sequence", "pretokenizers": [$steps]},\n "post_processor"/s' "$tok" >"$1"
}
byte_level='{"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}'
echo '{"type": "Split", "pattern": {"Regex": "(a+)+x|a"}, "behavior": "Isolated"}, '"$byte_level" >"$dir/steps"
split_tokenizer "$dir/nested.json" "$dir/steps"
head -c 200000 /dev/zero | tr '\0' 'a' >"$dir/aaa.txt"
expect 2 "matching steps for 200000 bytes of text" -- h tokenize --tokenizer "$dir/nested.json" "$dir/aaa.txt" --out "$dir/t.bin"
{ for i in $(seq 1 20000); do printf '{"type": "Split", "pattern": {"String": "q"}, "behavior": "Isolated"}, '; done
  echo "$byte_level"; } >"$dir/steps"
split_tokenizer "$dir/stages.json" "$dir/steps"
expect 2 "pre_tokenizer has 20001 steps; at most 16 are supported" -- h tokenize --tokenizer "$dir/stages.json" "$dir/a.txt" --out "$dir/t.bin"
same "tokenizer blow-ups" "$dir/t.bin" "$dir/t.keep"
same "tokenizer blow-ups" "$dir/t.bin.json" "$dir/t.json.keep"

# ---- outputs that fail half-way: all or nothing ----
expect 2 "--out and --hidden-out name the same file ($dir/l.npy)" -- \
  h forward "$dir/m" --tokens "1,2,3" --hidden-heads 0 --hidden-out "$dir/l.npy" --out "$dir/l.npy"
ln -f "$dir/l.npy" "$dir/l-hardlink.npy"
expect 2 "--out and --hidden-out name the same file" -- \
  h forward "$dir/m" --tokens "1,2,3" --hidden-heads 0 --hidden-out "$dir/l-hardlink.npy" --out "$dir/l.npy"
rm "$dir/l-hardlink.npy"
expect 2 "is also an input (model.safetensors)" -- h forward "$dir/m" --tokens 1 --out "$dir/m/model.safetensors"
h forward "$dir/m" --tokens 1,2 --out "$dir/ids.npy" >/dev/null 2>&1  # not integer ids, but a file to name
expect 2 "--out ($dir/ids.npy) is also an input (--tokens-file)" -- h forward "$dir/m" --tokens-file "$dir/ids.npy" --out "$dir/ids.npy"
# The second output cannot be written: the first is not replaced either.
expect 2 "cannot write $dir/nodir/h.npy" -- \
  h forward "$dir/m" --tokens "4,5,6" --hidden-heads 0 --hidden-out "$dir/nodir/h.npy" --out "$dir/l.npy"
mkdir "$dir/h-dir.npy"
expect 2 "cannot write $dir/h-dir.npy: it exists and is not a regular file" -- \
  h forward "$dir/m" --tokens "4,5,6" --hidden-heads 0 --hidden-out "$dir/h-dir.npy" --out "$dir/l.npy"
expect 2 "--out ($dir/a.txt) is also an input (a text to tokenize)" -- h tokenize --tokenizer "$tok" "$dir/a.txt" --out "$dir/a.txt"
mkdir "$dir/t2.bin.json"
cp "$dir/t.bin" "$dir/t2.bin"
expect 2 "cannot write $dir/t2.bin.json: it exists and is not a regular file" -- h tokenize --tokenizer "$tok" "$dir/a.txt" --out "$dir/t2.bin"
same "sidecar refused" "$dir/t2.bin" "$dir/t.keep"
# A full disk (RLIMIT_FSIZE, with SIGXFSZ ignored so write() fails with EFBIG): nothing replaced, no temp left.
head -c 300000 /dev/zero | tr '\0' 'x' >"$dir/big.txt"
expect 2 "File too large" -- bash -c "trap '' XFSZ; ulimit -f 8; exec timeout 60 '$hydra' tokenize --tokenizer '$tok' '$dir/big.txt' --out '$dir/t.bin'"
expect 2 "File too large" -- bash -c "trap '' XFSZ; ulimit -f 16; exec timeout 60 '$hydra' forward '$dir/m' --tokens 1,2,3,4,5,6,7,8 --hidden-heads 0 --hidden-out '$dir/h.npy' --out '$dir/l.npy'"
same "full disk" "$dir/l.npy" "$dir/l.keep"
same "full disk" "$dir/h.npy" "$dir/h.keep"
same "full disk" "$dir/t.bin" "$dir/t.keep"
same "full disk" "$dir/t.bin.json" "$dir/t.json.keep"
# SIGTERM at chosen points: the process ends by the signal (exit status 143) and leaves no temp. Before
# the renames, the old outputs are untouched; between two renames, the signal waits until both are done.
expect 143 "" -- env HYDRA_TEST_SIGNAL_AT="outputs written" timeout 60 "$hydra" tokenize --tokenizer "$tok" "$dir/big.txt" --out "$dir/t.bin"
expect 143 "" -- env HYDRA_TEST_SIGNAL_AT="outputs written" timeout 60 "$hydra" forward "$dir/m" --tokens 7,8 --hidden-heads 0 --hidden-out "$dir/h.npy" --out "$dir/l.npy"
expect 143 "" -- env HYDRA_TEST_SIGNAL_AT="directory written" timeout 60 "$hydra" init --preset tiny --out "$dir/interrupted"
[[ ! -e "$dir/interrupted" ]] || { echo "FAIL: an interrupted init left $dir/interrupted"; fail=$((fail + 1)); }
same "SIGTERM" "$dir/l.npy" "$dir/l.keep"
same "SIGTERM" "$dir/h.npy" "$dir/h.keep"
same "SIGTERM" "$dir/t.bin" "$dir/t.keep"
same "SIGTERM" "$dir/t.bin.json" "$dir/t.json.keep"
no_temps "after every failure above" "$dir"
cp -r "$dir/t.bin" "$dir/t.bin.json" "$dir/l.npy" "$dir/h.npy" "$dir/m/"  # a scratch copy of the pair
expect 143 "" -- env HYDRA_TEST_SIGNAL_AT="first output renamed" timeout 60 "$hydra" tokenize --tokenizer "$tok" "$dir/big.txt" --out "$dir/t.bin"
h tokenize --tokenizer "$tok" "$dir/big.txt" --out "$dir/t-ref.bin" >/dev/null
same "SIGTERM between renames: both new" "$dir/t.bin" "$dir/t-ref.bin"
if grep -q '"count": 300000' "$dir/t.bin.json"; then pass=$((pass + 1)); else echo "FAIL: the sidecar is not the new one"; fail=$((fail + 1)); fi
no_temps "after a signal between renames" "$dir"
cp "$dir/m/t.bin" "$dir/m/t.bin.json" "$dir/"  # back to the old pair
rm "$dir/m/t.bin" "$dir/m/t.bin.json" "$dir/m/l.npy" "$dir/m/h.npy"

# ---- cleaning up only what is ours ----
for name in .x.tmp-notes .x.tmp-123 .x.hydra-tmp-notes .x.old .x.hydra-old; do
  mkdir -p "$dir/$name" && echo mine >"$dir/$name/notes.txt"
done
mkdir "$dir/.x.hydra-tmp-0123456789abcdef" && echo mine >"$dir/.x.hydra-tmp-0123456789abcdef/notes.txt"  # no marker
expect 0 "wrote" -- h init --preset tiny --out "$dir/x"
for name in .x.tmp-notes .x.tmp-123 .x.hydra-tmp-notes .x.old .x.hydra-old .x.hydra-tmp-0123456789abcdef; do
  if [[ "$(cat "$dir/$name/notes.txt" 2>/dev/null)" == mine ]]; then pass=$((pass + 1)); else
    echo "FAIL: init --out x removed the user's $name"; fail=$((fail + 1)); fi
done
expect 0 "" -- h export "$dir/x" --head 0 --out "$dir/x-hf"
expect 0 "" -- h convert "$dir/x-hf" --out "$dir/x2" --n-heads 1 --heads-depth 1
[[ "$(cat "$dir/.x.hydra-old/notes.txt" 2>/dev/null)" == mine ]] && pass=$((pass + 1)) || { echo "FAIL: user's .x.hydra-old"; fail=$((fail + 1)); }

# ---- weights of the wrong dtype, or with NaNs ----
rm -rf "$dir/w" && cp -r "$dir/m" "$dir/w"
perl -0777 -pi -e 's/"dtype":"F32"/"dtype":"I32"/' "$dir/w/model.safetensors"  # the first tensor in the header
expect 2 "$dir/w/model.safetensors: tensor 'heads.0.blocks.0.attention.k_norm.weight' is I32; expected float weights (F32, F16 or BF16)" -- \
  h forward "$dir/w" --tokens 1 --out "$dir/l.npy"
expect 2 "is I32" -- h info "$dir/w"
rm -rf "$dir/w" && cp -r "$dir/m" "$dir/w"
header=$(od -An -tu8 -N8 "$dir/w/model.safetensors" | tr -d ' ')
printf '\x00\x00\xc0\x7f' | dd of="$dir/w/model.safetensors" bs=1 seek=$((8 + header + 12)) conv=notrunc status=none
expect 2 "tensor 'heads.0.blocks.0.attention.k_norm.weight' holds nan at index 3 (the first non-finite weight)" -- \
  h forward "$dir/w" --tokens 1 --out "$dir/l.npy"
same "bad weights" "$dir/l.npy" "$dir/l.keep"

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
