#!/usr/bin/env bash
# hydra generate and hydra train --sample-every through the real binary: a model trained a little on
# digit text, greedy speculative decoding giving greedy product-of-experts' ids over the verifiers,
# --json lines and the stdout/stderr split, --stop and --stop-at-eos, the same sampled ids at 1 and 2
# threads, --judge-head's score equal to hydra eval's for the same prompt and answer; samples during
# training leave the run's bytes unchanged; every bad input exits 2 with one message.
#
#   bash tests/cli/generate.sh path/to/hydra      (CTest passes the built binary)
set -uo pipefail
hydra=${1:?usage: generate.sh path/to/hydra}
tiny="$(cd "$(dirname "$0")/../fixtures/tokenizer" && pwd)/tiny.tokenizer.json"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"
# bad PATTERN args...: exit 2 and exactly one line, "hydra: error: ..." matching PATTERN.
bad() {
  local pattern=$1 out rc
  shift
  out=$("$hydra" generate "$@" 2>&1)
  rc=$?
  if [[ $rc -ne 2 || $(wc -l <<<"$out") -ne 1 ]] || ! grep -qF -- "$pattern" <<<"$out" || ! grep -q '^hydra: error: ' <<<"$out"; then
    echo "FAIL: 'generate $*' exited $rc (want 2, one line with '$pattern'):"
    echo "$out" | head -5
    fail=$((fail + 1))
  else
    pass=$((pass + 1))
  fi
}

# A small model (vocab 320 covers the tiny tokenizer's 260 ids), trained a little on digits.
small_config "$dir/config.json"
"$hydra" init --config "$dir/config.json" --seed 1 --out "$dir/model" >/dev/null || { echo "FAIL: init"; exit 1; }
seq 1 3000 | tr '\n' ' ' >"$dir/train.txt"
"$hydra" tokenize --tokenizer "$tiny" "$dir/train.txt" --out "$dir/train.bin" >/dev/null || { echo "FAIL: tokenize"; exit 1; }
targs=(--data "$dir/train.bin" --steps 80 --batch 8 --seq 32 --lr 1e-2 --warmup 5 --save-every 40 --seed 3)

# ---- samples while training: printed, in samples.txt, and the run's bytes unchanged ----
expect 0 "sample @ step 60, head 2:" -- "$hydra" train "$dir/model" --out "$dir/sampled" "${targs[@]}" \
  --tokenizer "$tiny" --sample-every 20 --sample-prompt "1 2 3" --sample-tokens 12
"$hydra" train "$dir/model" --out "$dir/plain" "${targs[@]}" >/dev/null || { echo "FAIL: plain run"; exit 1; }
check "samples: 4 steps x 3 heads in samples.txt" test "$(grep -c '^sample @ step' "$dir/sampled/samples.txt")" -eq 12
check "samples start with the prompt" test "$(grep -A1 '^sample @ step 20, head 0:' "$dir/sampled/samples.txt" | tail -1 | cut -c1-5)" = "1 2 3"
check "sampling leaves the weights bit-identical" cmp -s "$dir/plain/model.safetensors" "$dir/sampled/model.safetensors"
check "sampling leaves the losses bit-identical" diff <(losses "$dir/plain/metrics.csv") <(losses "$dir/sampled/metrics.csv")
check "sampling leaves the step-40 checkpoint's weights bit-identical" \
  cmp -s "$dir/plain/checkpoints/step_00000040/model.safetensors" "$dir/sampled/checkpoints/step_00000040/model.safetensors"
expect 0 "sample @ step 2, head 1:" -- "$hydra" train "$dir/model" --out "$dir/heads" --data "$dir/train.bin" --steps 2 \
  --seq 32 --train-heads 1 --tokenizer "$tiny" --sample-every 2
check "--train-heads: samples from the trained head only" test "$(grep -c '^sample @' "$dir/heads/samples.txt")" -eq 1
expect 2 "--sample-every needs --tokenizer" -- "$hydra" train "$dir/model" --out "$dir/bad" "${targs[@]}" --sample-every 2
expect 2 "need --sample-every" -- "$hydra" train "$dir/model" --out "$dir/bad" "${targs[@]}" --sample-prompt x
check "a refused run leaves no --out" test ! -e "$dir/bad"
# ---- greedy: speculative = product of experts over the verifiers, token for token ----
# On the trained model (the heads mostly agree) and on the untrained one (they mostly do not).
prompt=(--prompt "11 12 13 14" --tokenizer "$tiny")
for m in "$dir/plain" "$dir/model"; do
  poe=$("$hydra" generate "$m" "${prompt[@]}" --max-new-tokens 24 --temperature 0 --combine poe --heads 1,2 --json 2>/dev/null |
    tail -1 | grep -o '"ids":\[[0-9,]*\]')
  check "poe produced 24 ids" test "$(tr -cd ',' <<<"$poe" | wc -c)" -eq 23
  for gamma in 1 2 5; do
    spec=$("$hydra" generate "$m" "${prompt[@]}" --max-new-tokens 24 --temperature 0 --combine speculative \
      --draft-head 0 --gamma "$gamma" --json 2>/dev/null | tail -1 | grep -o '"ids":\[[0-9,]*\]')
    check "$(basename "$m"): speculative gamma $gamma = poe over heads 1,2" test "$spec" = "$poe"
  done
  spec_tokens=$("$hydra" generate "$m" --tokens 5,6,7 --max-new-tokens 10 --temperature 0 --combine speculative --draft-head 2 2>/dev/null)
  poe_tokens=$("$hydra" generate "$m" --tokens 5,6,7 --max-new-tokens 10 --temperature 0 --combine poe --heads 0,1 2>/dev/null)
  check "--tokens output: 10 ids" test "$(wc -w <<<"$poe_tokens")" -eq 10
  check "$(basename "$m") --tokens: speculative = poe" test "$spec_tokens" = "$poe_tokens"
done
model="$dir/plain"

# ---- --json lines, and the stdout / stderr split ----
"$hydra" generate "$model" "${prompt[@]}" --max-new-tokens 8 --combine speculative --json >"$dir/j.out" 2>"$dir/j.err"
check "--json: 8 token lines" test "$(grep -c '^{"type":"token"' "$dir/j.out")" -eq 8
check "--json: then one summary line" test "$(tail -1 "$dir/j.out" | grep -c '"type":"summary"')" -eq 1
check "--json: nothing on stderr" test ! -s "$dir/j.err"
for field in '"head_argmax":\[[0-9]*,[0-9]*,[0-9]*\]' '"vote_margin":' '"prob":' '"entropy":' '"top_margin":' '"drafted":' '"accepted":' '"text":'; do
  check "--json token lines have $field" test "$(grep -c "$field" "$dir/j.out")" -ge 8
done
for field in '"acceptance_rate":' '"decode_tokens_per_s":' '"prefill_tokens_per_s":' '"draft_head":' '"stop_reason":"length"'; do
  check "--json summary has $field" grep -q "$field" <(tail -1 "$dir/j.out")
done
"$hydra" generate "$model" "${prompt[@]}" --max-new-tokens 8 --combine speculative >"$dir/t.out" 2>"$dir/t.err"
check "text mode: the text and a newline on stdout" test "$(wc -l <"$dir/t.out")" -eq 1
check "text mode: the summary on stderr" grep -q "tokens/s.*acceptance rate" "$dir/t.err"
check "text mode: the text = the summary's text" test "$(cat "$dir/t.out")" = \
  "$(grep -o '"text":"[0-9 ]*"' <(tail -1 "$dir/j.out") | tail -1 | sed 's/"text":"//; s/"$//')"

# ---- --stop TEXT: the text ends before it; --stop-at-eos ----
full=$("$hydra" generate "$model" "${prompt[@]}" --max-new-tokens 30 --temperature 0 2>/dev/null)
stop=${full:4:3}
want=${full%%"$stop"*}
check "the stop text comes after some text ('$full')" test -n "$want"
got=$("$hydra" generate "$model" "${prompt[@]}" --max-new-tokens 30 --temperature 0 --stop "$stop" 2>"$dir/s.err")
check "--stop '$stop': the text up to its first occurrence ('$got' vs '$want')" test "$got" = "$want"
check "--stop: the stop reason" grep -q "stop: stop" "$dir/s.err"
expect 0 "stop: length" -- "$hydra" generate "$model" "${prompt[@]}" --max-new-tokens 3 --stop-at-eos

# ---- sampling: the same ids at 1 and 2 threads, and another seed differs ----
sample() { "$hydra" --threads "$1" generate "$model" "${prompt[@]}" --max-new-tokens 20 --temperature 1.5 --top-k 50 \
  --top-p 0.95 --seed "$2" --combine "$3" --json 2>/dev/null | tail -1 | grep -o '"ids":\[[0-9,]*\]'; }
for combine in mean poe head:1 speculative; do
  check "$combine sampling: 1 thread = 2 threads" test "$(sample 1 4 $combine)" = "$(sample 2 4 $combine)"
done
check "another seed, other ids" test "$(sample 1 4 mean)" != "$(sample 1 5 mean)"

# ---- --judge-head: the uncertainty head's score of the generated answer ----
# The score generate prints is the one hydra eval computes for the same prompt and answer: on a one-row
# file whose answer is the generated one (so the answer head is right), the Brier score is (1 - score)².
judge=(--prompt "11 12 13" --tokenizer "$tiny" --judge-head 2)
"$hydra" generate "$model" "${judge[@]}" --combine head:0 --temperature 0 --max-new-tokens 2 --json >"$dir/judge.out" 2>&1
summary=$(tail -1 "$dir/judge.out")
score=$(grep -o '"judge_score":[-0-9.e]*' <<<"$summary" | cut -d: -f2)
answer=$(grep -o '"text":"[0-9 ]*"' <<<"$summary" | sed 's/"text":"//; s/"$//')
check "--judge-head --json: a score in (0, 1) ('$summary')" awk -v s="$score" 'BEGIN { exit !(s > 0 && s < 1) }'
check "--judge-head --json: the heads in the summary" grep -q '"judge_head":2,"answer_head":0,' <<<"$summary"
check "--judge-head: a 2-token answer ('$answer')" test -n "$answer"
printf '{"prompt": "11 12 13", "answer": "%s"}\n' "$answer" >"$dir/one.jsonl"
"$hydra" eval "$model" --objective uncertainty --sft "$dir/one.jsonl" --tokenizer "$tiny" --judge-head 2 --answer-head 0 \
  --max-answer-tokens 2 --batch 1 --json --reliability-svg "$dir/one.svg" >"$dir/one.json" 2>&1
brier=$(grep -o '"brier": [-0-9.e]*' "$dir/one.json" | cut -d' ' -f2)
check "eval: the answer head is right on the generated answer" grep -q '"answer_head_accuracy": 1.0' "$dir/one.json"
check "the printed score is eval's: (1 - $score)^2 = Brier $brier" \
  awk -v s="$score" -v b="$brier" 'BEGIN { d = (1 - s) * (1 - s) - b; exit !(b != "" && d < 1e-12 && d > -1e-12) }'
expect 0 "judge head 2 on head 0: score 0\.[0-9]\{4\}; stop: length" -- \
  "$hydra" generate "$model" "${judge[@]}" --combine head:0 --temperature 0 --max-new-tokens 2
check "text mode: the same score on stderr (4 decimals)" grep -q "score $(printf '%.4f' "$score");" \
  <("$hydra" generate "$model" "${judge[@]}" --combine head:0 --temperature 0 --max-new-tokens 2 2>&1 >/dev/null)
# Without --heads the judge head takes no part in generating; --tokens with --tokenizer works too.
check "--combine mean --judge-head 2: heads 0 and 1 generate" grep -q '"heads":\[0,1\]' \
  <("$hydra" generate "$model" "${judge[@]}" --answer-head 1 --max-new-tokens 2 --json 2>/dev/null | tail -1)
expect 0 '"judge_score":' -- "$hydra" generate "$model" --tokens 5,6,7 --tokenizer "$tiny" --combine head:1 --judge-head 0 \
  --max-new-tokens 3 --json

# ---- bad input: exit 2, one message ----
sed 's/"vocab_size": 320/"vocab_size": 200/' "$dir/config.json" >"$dir/small-vocab.json"
"$hydra" init --config "$dir/small-vocab.json" --out "$dir/small-vocab" >/dev/null
bad "head 5 is out of range (the model has 3 heads" "$model" --tokens 1,2 --combine head:5
bad "--heads: head 3 is out of range" "$model" --tokens 1,2 --heads 0,3
bad "--temperature must be >= 0" "$model" --tokens 1,2 --temperature -0.5
bad "--top-p must be in (0, 1]" "$model" --tokens 1,2 --top-p 0
bad "--top-p must be in (0, 1]" "$model" --tokens 1,2 --top-p 1.5
bad "the prompt's 3 tokens plus --max-new-tokens 8 = 11 exceed the context limit of 10 tokens" \
  "$model" --tokens 1,2,3 --max-new-tokens 8 --max-context 10
bad "exceed the context limit of 4096 tokens" "$model" --tokens 1,2,3 --max-new-tokens 4094
bad "has 260 ids, more than the model's vocabulary of 200" "$dir/small-vocab" "${prompt[@]}"
bad "--tokens: id 320 at position 1 is outside the vocabulary [0, 320)" "$model" --tokens 1,320
bad "--tokens: id 300 at position 0 is outside the vocabulary [0, 260)" "$model" --tokens 300 --tokenizer "$tiny"
bad "--prompt needs --tokenizer" "$model" --prompt hello
bad "give --prompt TEXT (with --tokenizer) or --tokens" "$model"
bad "needs at least two heads" "$model" --tokens 1 --combine speculative --heads 2
bad "--draft-head 2 is not among --heads 0,1" "$model" --tokens 1 --combine speculative --heads 0,1 --draft-head 2
bad "--draft-head needs --combine speculative" "$model" --tokens 1 --draft-head 1
bad "expected mean, poe, head:K or speculative" "$model" --tokens 1 --combine vote
bad "--beta: 2 weights for 3 combined heads" "$model" --tokens 1 --combine poe --beta 1,2
bad "expected a whole number from 1 to 16" "$model" --tokens 1 --combine speculative --gamma 17
bad "--stop needs --tokenizer" "$model" --tokens 1 --stop x
bad "--judge-head 3 is out of range (the model has 3 heads)" "$model" --prompt "11" --tokenizer "$tiny" --judge-head 3 --combine head:0
bad "--judge-head and --answer-head must be different heads (both 1)" "$model" --prompt "11" --tokenizer "$tiny" --judge-head 1 --answer-head 1 --combine head:0
bad "--judge-head and --answer-head must be different heads (both 2)" "$model" "${judge[@]}" --combine head:2
bad "--judge-head needs --tokenizer" "$model" --tokens 1,2 --combine head:0 --judge-head 2
bad "give --answer-head A, the head whose hidden state the judge reads" "$model" "${judge[@]}" --combine poe
bad "--answer-head needs --judge-head" "$model" --tokens 1 --answer-head 0
bad "--judge-template needs --judge-head" "$model" --tokens 1 --judge-template "{prompt}{answer}"
bad "--judge-tokens: expected RIGHT,WRONG" "$model" "${judge[@]}" --combine head:0 --judge-tokens A
bad "--judge-tokens: 'ab c' is 3 tokens" "$model" "${judge[@]}" --combine head:0 --judge-tokens "ab c,B"
bad "--judge-template must hold {prompt} then {answer}" "$model" "${judge[@]}" --combine head:0 --judge-template "{answer}"
bad "cannot open Hydra model config $dir/nowhere/config.json: No such file" "$dir/nowhere" --tokens 1

if [[ $fail -ne 0 ]]; then
  echo "generate.sh: $fail check(s) failed" >&2
  exit 1
fi
echo "generate.sh: ok ($pass checks)"
