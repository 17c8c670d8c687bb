#!/usr/bin/env bash
# The demo that README command 1 runs after building: a small Hydra trained from scratch on the King
# James Bible, its heads fine-tuned on three disjoint parts of it, evaluated, and asked to write.
#
#   bash scripts/demo.sh BUILD_DIR [--quick] [--out DIR]
#
# BUILD_DIR holds the built `hydra`. Everything the demo writes goes under DIR (default runs/demo, or
# runs/demo-quick with --quick), which is emptied first when an earlier demo made it; the files are
# listed at the end. --quick runs the same steps with a smaller model and fewer steps (CI runs it).
# Seeds are fixed, so a run is reproducible bit for bit; the thread count (all cores, or
# $HYDRA_NUM_THREADS) changes only the speed, since Hydra's results do not depend on it.
#
# Steps: 1 corpus (data/kjv.txt.zst, its sha256 verified, split into train and held-out chapters and
# into three parts), 2 tokenizer (hydra tokenizer-train, hydra tokenize), 3 pretraining (hydra init,
# hydra train: trunk and every head), 4 fine-tuning (hydra train --train-heads: trunk frozen, head k on
# part k), 5 evaluation (hydra eval: each head, the ensemble, their disagreement), 6 samples (hydra
# generate: each head alone, then speculative decoding with its acceptance rate).
#
# Exit codes: 0 done; 1 a step failed (a corrupt corpus, a failing command); 2 bad usage.
# HYDRA_DEMO_CORPUS replaces data/kjv.txt.zst (the tests use it to check that a corrupt file is refused).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
  echo "usage: bash scripts/demo.sh BUILD_DIR [--quick] [--out DIR]" >&2
  exit 2
}

build_dir=""
quick=0
out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --out)
      [[ $# -ge 2 && -n "$2" ]] || { echo "demo.sh: --out needs a directory" >&2; usage; }
      out=$2
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    -*) echo "demo.sh: unknown option '$1'" >&2; usage ;;
    *)
      [[ -z "$build_dir" ]] || { echo "demo.sh: unexpected argument '$1' (BUILD_DIR is '$build_dir')" >&2; usage; }
      build_dir=$1
      ;;
  esac
  shift
done
[[ -n "$build_dir" ]] || { echo "demo.sh: BUILD_DIR is missing" >&2; usage; }
hydra=$(cd "$build_dir" 2>/dev/null && pwd)/hydra || true
if [[ ! -x "$hydra" ]]; then
  echo "demo.sh: no hydra binary in '$build_dir' (build it first: bash scripts/build.sh $build_dir -- hydra)" >&2
  exit 2
fi
if [[ -z "$out" ]]; then
  out="$root/runs/demo"
  [[ $quick -eq 1 ]] && out="$root/runs/demo-quick"
fi

# ---- the two sizes ----
# The full demo is tuned to write recognisable King James English in under 6 minutes on 2 idle cores;
# the quick one only has to show every step working (its loss falls well below a uniform guess).
if [[ $quick -eq 0 ]]; then
  vocab=2048             # BPE ids: the corpus has ~14,000 distinct words; 2048 ids give ~3.6 bytes a token
  d_model=128 attention_heads=4 ffn=384 trunk_blocks=4 head_blocks=2
  batch=16 seq=128       # 2048 tokens a step; most verses fit in a window
  pre_steps=1200 pre_lr=3e-3 pre_warmup=50
  ft_steps=300 ft_lr=1e-3
  eval_every=300 eval_tokens=32768
  final_eval_tokens=65536  # the whole held-out set (~55,000 tokens)
  sample_tokens=60
else
  vocab=1024
  d_model=64 attention_heads=2 ffn=192 trunk_blocks=2 head_blocks=1
  batch=8 seq=64
  pre_steps=300 pre_lr=5e-3 pre_warmup=20
  ft_steps=60 ft_lr=2e-3
  eval_every=150 eval_tokens=8192
  final_eval_tokens=16384
  sample_tokens=24
fi
n_heads=3
part_names=("Law and History (Genesis-Esther)" "Poetry and Prophets (Job-Malachi)" "New Testament (Matthew-Revelation)")
prompt="And he said unto them,"
seed=1234

corpus=${HYDRA_DEMO_CORPUS:-$root/data/kjv.txt.zst}
# The digests data/README.md records: the compressed file, then the text inside it.
corpus_zst_sha256=1b790d14a2e688005ce136b9c9b3fd6874696117c8dd140ff0662c4ad73b2782
corpus_txt_sha256=dbd05e2e52ecd8fa20be8da9c0eac0dbe2fb8744939cb37cc454686e241bdb02
corpus_chapters=1189

# ---- helpers ----
started=$SECONDS
stage_started=$SECONDS
stage_number=0
stage() {  # stage TITLE: a header for the next step, with the time the last one took
  stage_number=$((stage_number + 1))
  if [[ $stage_number -gt 1 ]]; then echo "    ($((SECONDS - stage_started)) s)"; fi
  stage_started=$SECONDS
  echo
  echo "==> [$stage_number/6] $1"
}
fail() {
  echo "demo.sh: $*" >&2
  exit 1
}
run() {  # run hydra ARGS...: show the command (paths relative to the output directory), then run it
  local shown="hydra" arg
  for arg in "${@:2}"; do
    arg=${arg//"$out/"/}
    [[ "$arg" =~ ^[A-Za-z0-9_./=,:+-]+$ ]] || arg=$(printf '%q' "$arg")
    shown+=" $arg"
  done
  echo "    \$ $shown"
  "$@"
}
sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
# eval_loss FILE WHAT: the loss on the line of `hydra eval`'s output that starts with WHAT ("head 0", ...).
eval_loss() { awk -v what="  $2:" 'index($0, what) == 1 { for (i = 1; i < NF; i++) if ($i == "loss") print $(i + 1) }' "$1"; }

# ---- the output directory: ours to empty, or new ----
if [[ -e "$out" ]]; then
  [[ -f "$out/.hydra-demo" ]] ||
    { echo "demo.sh: '$out' exists and was not made by the demo; choose another --out or remove it" >&2; exit 2; }
  rm -rf "$out"
fi
mkdir -p "$out/data"
echo "made by scripts/demo.sh; removed by its next run" >"$out/.hydra-demo"
threads=$("$hydra" version | sed -n 's/^threads: \([0-9]*\).*/\1/p')
echo "Hydra demo$([[ $quick -eq 1 ]] && echo " (--quick)"): $hydra, seed $seed, threads $threads (the results do not depend on it) -> $out"

# ---- 1: the corpus ----
stage "corpus: the King James Bible (public domain), split into train and held-out chapters, and into $n_heads parts"
[[ -f "$corpus" ]] || fail "the corpus '$corpus' is missing (it is part of the repository)"
got=$(sha256_of "$corpus")
[[ "$got" == "$corpus_zst_sha256" ]] ||
  fail "'$corpus' is corrupt: sha256 $got, expected $corpus_zst_sha256 (data/README.md); restore it with git checkout"
zstd -q -d -c "$corpus" >"$out/data/kjv.txt" || fail "cannot decompress '$corpus' (is the zstd tool installed?)"
got=$(sha256_of "$out/data/kjv.txt")
[[ "$got" == "$corpus_txt_sha256" ]] ||
  fail "the text in '$corpus' has sha256 $got, expected $corpus_txt_sha256 (data/README.md)"
# A chapter starts at its heading ("Genesis 1", "Song of Solomon 3") after a blank line. Every 20th
# chapter, starting at the 11th, is held out for validation; the parts are the Old Testament's law and
# histories, its poetry and prophets, and the New Testament.
chapters=$(cd "$out/data" && awk '
  BEGIN { part = 0; chapter = -1; previous = "" }
  previous == "" && /^[1-3]? ?[A-Z][a-z]+( of [A-Z][a-z]+)? [0-9]+$/ {
    book = $0; sub(/ [0-9]+$/, "", book)
    if (book == "Job") part = 1
    if (book == "Matthew") part = 2
    chapter++
  }
  {
    split_name = (chapter % 20 == 10) ? "val" : "train"
    print > (split_name ".txt")
    print > (split_name "_part" part ".txt")
    previous = $0
  }
  END { print chapter + 1 }' kjv.txt)
[[ "$chapters" == "$corpus_chapters" ]] || fail "found $chapters chapter headings in the corpus, expected $corpus_chapters"
echo "    $chapters chapters, $(wc -c <"$out/data/kjv.txt") bytes: train $(wc -c <"$out/data/train.txt")," \
     "validation $(wc -c <"$out/data/val.txt") (every 20th chapter)"
for k in 0 1 2; do
  echo "    part $k: ${part_names[$k]}, train $(wc -c <"$out/data/train_part$k.txt") bytes"
done

# ---- 2: the tokenizer ----
stage "tokenizer: byte-level BPE with $vocab ids learned from the training text, then every file tokenized"
run "$hydra" tokenizer-train "$out/data/train.txt" --vocab-size "$vocab" --out "$out/tokenizer.json"
for name in train val train_part0 train_part1 train_part2 val_part0 val_part1 val_part2; do
  "$hydra" tokenize --tokenizer "$out/tokenizer.json" "$out/data/$name.txt" --out "$out/data/$name.bin" >/dev/null
done
tokens() { sed -n 's/^ *"count": \([0-9]*\),$/\1/p' "$out/data/$1.bin.json"; }
echo "    tokens: train $(tokens train), validation $(tokens val); parts $(tokens train_part0)," \
     "$(tokens train_part1), $(tokens train_part2)"

# ---- 3: pretraining ----
stage "pretraining from scratch: the trunk and all $n_heads heads on the whole training text"
cat >"$out/config.json" <<EOF
{"format_version": 1, "n_heads": $n_heads, "trunk_layers": $trunk_blocks, "head_layers": $head_blocks,
 "base_config": {"vocab_size": $vocab, "d_model": $d_model, "n_layers": $((trunk_blocks + head_blocks)),
                 "n_heads": $attention_heads, "n_kv_heads": $attention_heads, "head_dim": $((d_model / attention_heads)),
                 "hidden_size": $ffn, "rope_theta": 10000.0, "norm_eps": 1e-6, "qk_norm": true, "init_std": 0.02}}
EOF
run "$hydra" init --config "$out/config.json" --seed "$seed" --out "$out/init" >/dev/null
"$hydra" info "$out/init" | sed -n 's/^\(base\|hydra\):/    \1:/p; s/^  total  */    parameters: /p'
run "$hydra" train "$out/init" --data "$out/data/train.bin" --val "$out/data/val.bin" --out "$out/pretrain" \
  --steps "$pre_steps" --batch "$batch" --seq "$seq" --lr "$pre_lr" --warmup "$pre_warmup" --seed "$seed" \
  --eval-every "$eval_every" --eval-tokens "$eval_tokens" --log-every 25 \
  --tokenizer "$out/tokenizer.json" --sample-every "$eval_every" --sample-prompt "$prompt" --sample-tokens 24

# ---- 4: fine-tuning ----
stage "fine-tuning: trunk and lm_head frozen, head k trained on part k only"
run "$hydra" train "$out/pretrain" --train-heads 0,1,2 --head-data "0=$out/data/train_part0.bin" \
  --head-data "1=$out/data/train_part1.bin" --head-data "2=$out/data/train_part2.bin" \
  --val "$out/data/val.bin" --out "$out/heads" --steps "$ft_steps" --batch "$batch" --seq "$seq" \
  --lr "$ft_lr" --warmup 0 --seed "$seed" --eval-tokens "$eval_tokens" --log-every 25

# ---- 5: evaluation ----
stage "evaluation on the held-out chapters: each head, the ensemble, and how often the heads disagree"
run "$hydra" eval "$out/heads" --data "$out/data/val.bin" --batch "$batch" --seq "$seq" --eval-tokens "$final_eval_tokens" |
  tee "$out/eval.txt"
# Which head knows which part: every head on each part's held-out chapters, before and after fine-tuning.
for k in 0 1 2; do
  for model in pretrain heads; do
    "$hydra" eval "$out/$model" --data "$out/data/val_part$k.bin" --batch "$batch" --seq "$seq" \
      --eval-tokens "$eval_tokens" >"$out/eval_part${k}_$model.txt"
  done
done
echo
echo "    validation loss on each part's held-out chapters (pretrained -> fine-tuned):"
printf '    %-10s' ""
for k in 0 1 2; do printf '%-22s' "part $k"; done
echo
for h in 0 1 2; do
  printf '    %-10s' "head $h"
  for k in 0 1 2; do
    printf '%-22s' "$(eval_loss "$out/eval_part${k}_pretrain.txt" "head $h") -> $(eval_loss "$out/eval_part${k}_heads.txt" "head $h")"
  done
  echo
done

# ---- 6: samples ----
stage "samples: \"$prompt\" continued by each head, then by speculative decoding over all three"
generate() {  # generate NAME ARGS...: a sample into samples/NAME.txt, its statistics into samples/NAME.log
  "$hydra" generate "$out/heads" --tokenizer "$out/tokenizer.json" --prompt "$prompt" \
    --max-new-tokens "$sample_tokens" --temperature 0.6 --top-k 40 --seed "$seed" "${@:2}" \
    >"$out/samples/$1.txt" 2>"$out/samples/$1.log"
}
mkdir -p "$out/samples"
for h in 0 1 2; do
  generate "head$h" --combine "head:$h"
  echo "    head $h (${part_names[$h]}):"
  echo "$prompt$(cat "$out/samples/head$h.txt")" | fold -s -w 96 | sed 's/^/      /'
done
generate speculative --combine speculative --gamma 4
acceptance=$(sed -n 's/.*\(acceptance rate [0-9.]* ([0-9]* of [0-9]* proposals)\).*/\1/p' "$out/samples/speculative.log")
[[ -n "$acceptance" ]] || fail "hydra generate --combine speculative printed no acceptance rate: $(cat "$out/samples/speculative.log")"
draft=$(sed -n 's/.*draft head \([0-9]*\).*/\1/p' "$out/samples/speculative.log")
echo "    speculative (head $draft drafts, the other two verify as a product of experts; $acceptance):"
echo "$prompt$(cat "$out/samples/speculative.txt")" | fold -s -w 96 | sed 's/^/      /'

# ---- summary ----
echo "    ($((SECONDS - stage_started)) s)"
echo
uniform=$(awk -v v="$vocab" 'BEGIN { printf "%.4f", log(v) }')
echo "==> summary ($((SECONDS - started)) s, threads $threads, seed $seed)"
echo "    validation loss (uniform guess ln $vocab = $uniform):"
for h in 0 1 2; do echo "      head $h      $(eval_loss "$out/eval.txt" "head $h")"; done
echo "      ensemble    $(eval_loss "$out/eval.txt" "ensemble (mean logits)")"
echo "      heads' argmax disagree at $(sed -n 's/^  disagreement: \([0-9.]*\).*/\1/p' "$out/eval.txt") of positions"
echo "    speculative decoding: $acceptance"
echo "    loss curves: pretrain/loss.svg, heads/loss.svg$(command -v gnuplot >/dev/null || echo " (not drawn: gnuplot is not installed)")"
echo "    everything is in $out:"
listed() {  # listed PATH WHAT: one line of the listing, with the size on disk
  printf '      %-18s %6s  %s\n' "$1" "$(du -sh "$out/$1" | cut -f1)" "$2"
}
listed data/ "the corpus, its train/validation/part splits (.txt) and their tokens (.bin, .bin.json)"
listed tokenizer.json "the BPE tokenizer ($vocab ids)"
listed config.json "the model's shape; init/ holds its initial weights"
listed init/ "the freshly initialised model (hydra init)"
listed pretrain/ "the pretrained model, metrics.csv, eval.csv, loss.svg, samples.txt, checkpoints/"
listed heads/ "the fine-tuned model (every command loads it), metrics.csv, eval.csv, loss.svg, checkpoints/"
listed eval.txt "hydra eval on the held-out chapters; eval_part<k>_<model>.txt: on part k's"
listed samples/ "each sample (.txt) and its generation statistics (.log)"
