#!/usr/bin/env bash
# docs/head-experiments.md runs as written: its ```sh blocks, in order, in one shell, in a scratch copy of
# the repository layout (build/hydra is the binary under test). Every command must succeed; the output
# the page quotes in ```text blocks must appear in the run's output with the same words (numbers may
# differ in their digits: other CPUs round differently); and the claims the prose makes about the
# results must hold (the specialised head is the best on its own data, LoRA's size, the judge's fields).
#
#   bash tests/cli/docs_commands.sh path/to/hydra      (CTest passes the built binary)
set -uo pipefail
hydra=$(realpath "${1:?usage: docs_commands.sh path/to/hydra}")
doc="$(cd "$(dirname "$0")/../.." && pwd)/docs/head-experiments.md"
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

# Under AddressSanitizer the page's training runs take minutes; each command it uses is run under the
# sanitizers by the other CLI tests (train.sh, generate.sh, lora.sh, tokenize.sh, tokenizer_train.sh),
# and what this test adds, that the page's commands work as written, does not depend on the build.
if grep -qa __asan_init "$hydra"; then
  echo "docs_commands.sh: skipped in a sanitizer build (its commands are covered by the other CLI tests there)"
  exit 77  # CTest shows it as skipped (SKIP_RETURN_CODE in CMakeLists.txt)
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/build"
ln -s "$hydra" "$dir/build/hydra"

# The page's shell: every ```sh block, in order.
awk '/^```sh$/ { on = 1; next } /^```$/ { on = 0 } on' "$doc" >"$dir/page.sh"
check "the page has shell blocks" -- test "$(grep -c . "$dir/page.sh")" -gt 20
start=$(date +%s)
(cd "$dir" && bash -euo pipefail page.sh) >"$dir/out.txt" 2>&1
rc=$?
if [[ $rc -ne 0 ]]; then
  echo "FAIL: the page's commands exited $rc; the last lines of their output:"
  tail -20 "$dir/out.txt"
  exit 1
fi
echo "docs_commands.sh: the page ran in $(($(date +%s) - start)) s"
run="$dir/runs/head-experiment"

# Every ```text block appears in the output, line for line, with each number replaced by '#'.
mask() { sed -E 's/[0-9][0-9,]*(\.[0-9]+)?/#/g'; }
mask <"$dir/out.txt" >"$dir/out.masked"
awk '/^```text$/ { on = 1; n++; next } /^```$/ { on = 0 } on { print > (dir "/block" n ".txt") }' dir="$dir" "$doc"
for block in "$dir"/block*.txt; do
  while IFS= read -r line; do
    check "the page's output line '$line' is in the run's output" -- grep -qxF -- "$line" "$dir/out.masked"
  done < <(mask <"$block")
done

# The prose's claims.
loss() { grep -A8 "^eval $1 on data/$2-val.bin" "$dir/out.txt" | grep "^  head $3:" | awk '{ print $4 }'; }
less() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && a < b) }'; }
check "on sums, head 0 beats the base model's head 2 ($(loss heads plus 0) < $(loss heads plus 2))" -- \
  less "$(loss heads plus 0)" "$(loss heads plus 2)"
check "on sums, head 1 is the worst ($(loss heads plus 2) < $(loss heads plus 1))" -- less "$(loss heads plus 2)" "$(loss heads plus 1)"
check "on products, head 1 beats head 2 ($(loss heads times 1) < $(loss heads times 2))" -- \
  less "$(loss heads times 1)" "$(loss heads times 2)"
check "on products, head 0 is the worst ($(loss heads times 2) < $(loss heads times 0))" -- less "$(loss heads times 2)" "$(loss heads times 0)"
check "on sums, LoRA's head 0 beats the full head 0 ($(loss lora plus 0) < $(loss heads plus 0))" -- \
  less "$(loss lora plus 0)" "$(loss heads plus 0)"
check "on products, LoRA's head 1 beats head 2 ($(loss lora times 1) < $(loss lora times 2))" -- \
  less "$(loss lora times 1)" "$(loss lora times 2)"
combined() { grep -A8 "^eval $1 on data/$2-val.bin" "$dir/out.txt" | grep "^  $3" | awk '{ print $(NF - 2) }'; }
for data in plus times; do
  heads=$(for k in 0 1 2; do loss heads $data $k; done | sort -n | tr '\n' ' ')
  ensemble=$(combined heads $data ensemble) poe=$(combined heads $data product)
  check "$data: the ensemble ($ensemble) lies between the best and the worst head ($heads)" -- \
    less "${heads%% *}" "$ensemble"
  check "$data: the ensemble is below the worst head" -- less "$ensemble" "$(awk '{ print $3 }' <<<"$heads")"
  check "$data: the product of experts ($poe) pays more than any head" -- less "$(awk '{ print $3 }' <<<"$heads")" "$poe"
done
disagreement() { grep -A8 "^eval $1 on data/$2-val.bin" "$dir/out.txt" | grep "^  disagreement:" | awk '{ print $2 }'; }
for data in plus times; do
  check "$data: the heads disagree more after specialising ($(disagreement base $data) < $(disagreement heads $data))" -- \
    less "$(disagreement base $data)" "$(disagreement heads $data)"
done
check "LoRA: 6,144 adapter parameters" -- grep -q "LoRA adapters  *6,144" "$dir/out.txt"
check "merge-lora wrote a plain model directory" -- test -s "$run/lora-merged/model.safetensors" -a ! -e "$run/lora-merged/adapters.safetensors"
check "eval --json: heads 0 and 2" -- grep -q '"head": 2' "$run/heads-plus.json"
check "speculative decoding reported its acceptance rate" -- grep -q "draft head 2, gamma 4: acceptance rate" "$dir/out.txt"
check "generate --json: token lines with the vote margin" -- grep -q '"vote_margin":' "$dir/out.txt"
check "greedy: heads 0 and 1 say ' 13', head 2 something else" -- \
  grep -q '"head_argmax":\[\([0-9]*\),\1,[0-9]*\],"vote_margin":1,"text":" 13"}' "$dir/out.txt"
brier=$(grep -o "Brier [0-9.]* (a constant predictor: [0-9.]*)" "$dir/out.txt" | tail -1)
check "the judge beats the constant predictor ($brier)" -- less "$(awk '{ print $2 }' <<<"$brier")" "$(tr -d ')' <<<"$brier" | awk '{ print $NF }')"
check "the judge ranks better than chance" -- less 0.5 "$(grep -o "^  AUROC [0-9.]*" "$dir/out.txt" | tail -1 | awk '{ print $2 }')"
scores=($(grep -o "judge head 2 on head 0: score [0-9.]*" "$dir/out.txt" | awk '{ print $NF }'))
check "generate --judge-head: two scores (${scores[*]})" -- test "${#scores[@]}" -eq 2
check "the right answer scores above 1/2, the wrong one below" -- less 0.5 "${scores[0]:-}"
check "the wrong answer scores below 1/2" -- less "${scores[1]:-}" 0.5
check "the two answers: 13 then 12" -- test "$(grep -B2 "judge head 2 on head 0: score" "$dir/out.txt" | grep -v 'score\|^--' | tr -d ' \n')" = "1312"

if [[ $fail -ne 0 ]]; then
  echo "docs_commands.sh: $fail check(s) failed" >&2
  exit 1
fi
echo "docs_commands.sh: ok ($pass checks)"
