#!/usr/bin/env bash
# hydra train across processes (mpirun; docs/distributed.md), against one process:
#   - data parallel, 2 ranks x batch B == one process with --grad-accum 2, bit for bit (final weights and
#     metrics), on sequential and on shuffled data;
#   - head parallel (3 heads on 2 ranks): with the trunk frozen and --shard-by-head, bit for bit; with
#     the trunk trained, bit for bit too (the sums happen in one process's order);
#   - a rank killed mid-run ends the job non-zero within 30 s; a hung rank ends it at HYDRA_MPI_TIMEOUT;
#     the last checkpoint resumes to the same final bytes as a run never interrupted; a resume with
#     another number of ranks is refused (exit 2), as are the features that cannot be made
#     deterministic across processes.
# Skipped (exit 77) when the binary has no MPI or mpirun is missing.
#
#   bash tests/cli/mpi.sh path/to/hydra      (CTest passes the built binary)
set -uo pipefail
hydra=${1:?usage: mpi.sh path/to/hydra}
if "$hydra" version | grep -q '^mpi: not built in'; then
  echo "SKIP: this hydra was built without MPI (-DHYDRA_MPI=OFF, or libopenmpi-dev missing)"
  exit 77
fi
if ! command -v mpirun >/dev/null; then
  echo "SKIP: mpirun not found (Debian package openmpi-bin)"
  exit 77
fi
if grep -qa __asan_init "$hydra"; then
  # The sanitizer tree: Open MPI's own never-freed start-up allocations are suppressed (tests/lsan_mpi.supp),
  # which needs full stack unwinding to see their libraries' frames.
  export LSAN_OPTIONS="suppressions=$(cd "$(dirname "$0")/.." && pwd)/lsan_mpi.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
fi
tiny="$(cd "$(dirname "$0")/../fixtures/tokenizer" && pwd)/tiny.tokenizer.json"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

# --allow-run-as-root: CI runs as root; --oversubscribe: more ranks than free cores is fine here.
mpi=(mpirun --allow-run-as-root --oversubscribe -np 2)

small_config "$dir/config.json"
"$hydra" init --config "$dir/config.json" --seed 1 --out "$dir/model" >/dev/null || { echo "FAIL: init"; exit 1; }
seq 1 1500 | tr '\n' ' ' >"$dir/train.txt"
seq 7000 7040 | tr '\n' ' ' >"$dir/short.txt"
for f in train short; do
  "$hydra" tokenize --tokenizer "$tiny" "$dir/$f.txt" --out "$dir/$f.bin" >/dev/null || { echo "FAIL: tokenize $f"; exit 1; }
done

same_run() {  # same_run WHAT DIR_A DIR_B: the same final weights, logged losses and norms, and evaluations
  check "$1: the same final weights" cmp "$2/model.safetensors" "$3/model.safetensors"
  check "$1: the same metrics" diff <(losses "$2/metrics.csv") <(losses "$3/metrics.csv")
  if [[ -f "$2/eval.csv" || -f "$3/eval.csv" ]]; then
    check "$1: the same evaluations" cmp "$2/eval.csv" "$3/eval.csv"
  fi
}

common=(--data "$dir/train.bin" --steps 4 --seq 16 --lr 3e-3 --warmup 1 --threads 1)

# ---- data parallel ----
# Evaluation too: each rank scores every other batch of --val (47 batches of 8), eval.csv the same bytes.
val=(--val "$dir/train.bin" --eval-every 2 --eval-batch 8)
for order in sequential shuffle; do
  expect 0 "done: 4 steps" -- "$hydra" train "$dir/model" "${common[@]}" --data-order $order --batch 2 --grad-accum 2 \
    "${val[@]}" --out "$dir/one-$order"
  expect 0 "parallel: data, 2 MPI ranks" -- "${mpi[@]}" "$hydra" train "$dir/model" "${common[@]}" --data-order $order \
    --batch 2 --save-every 2 "${val[@]}" --out "$dir/dp-$order"
  same_run "data parallel ($order)" "$dir/one-$order" "$dir/dp-$order"
done
# The gradient sum overlapped with backward (the default) and sent whole after it give the same bits,
# also with 2 stashed micro-batches per rank (each bucket folds the stash in before it is sent; against
# one process that would be another order of additions: ((g0 + g2) + (g1 + g3)) vs (((g0 + g1) + g2) + g3));
# and two data groups equal one process (the trunk runs twice per micro-batch: each layer's bucket is
# sent after its last use).
HYDRA_MPI_OVERLAP=0 expect 0 "the whole slab after backward" -- "${mpi[@]}" "$hydra" train "$dir/model" "${common[@]}" \
  --data-order shuffle --batch 2 "${val[@]}" --out "$dir/dp-whole"
same_run "data parallel, sum after backward" "$dir/one-shuffle" "$dir/dp-whole"
HYDRA_MPI_OVERLAP=0 expect 0 "done: 4 steps" -- "${mpi[@]}" "$hydra" train "$dir/model" "${common[@]}" --batch 1 \
  --grad-accum 2 --out "$dir/dp-accum2-whole"
expect 0 "layer buckets sent as backward completes them" -- "${mpi[@]}" "$hydra" train "$dir/model" "${common[@]}" \
  --batch 1 --grad-accum 2 --out "$dir/dp-accum2"
same_run "data parallel, 2 micro-batches per rank" "$dir/dp-accum2-whole" "$dir/dp-accum2"
expect 0 "done: 4 steps" -- "$hydra" train "$dir/model" "${common[@]}" --batch 2 --grad-accum 2 \
  --head-data 2="$dir/short.bin" --out "$dir/one-groups"
expect 0 "done: 4 steps" -- "${mpi[@]}" "$hydra" train "$dir/model" "${common[@]}" --batch 2 \
  --head-data 2="$dir/short.bin" --out "$dir/dp-groups"
same_run "data parallel, two data groups" "$dir/one-groups" "$dir/dp-groups"
# The rank-order sum itself on a slab of 5 segments (160 MB), past the 64 MB cap on receive buffers in
# flight (start() then completes the oldest pieces first): bench_allreduce checks every sum.
allreduce="$(dirname "$hydra")/bench_allreduce"
if [[ -x "$allreduce" ]]; then
  check "rank-order all-reduce of 40M floats, receive buffers capped" "${mpi[@]}" "$allreduce" 40000000 1
fi
# Ranks that disagree about the overlap would start different sums: refused at the first step.
one=("$hydra" train "$dir/model" "${common[@]}" --batch 2 --out "$dir/dp-mixed")
expect 2 "HYDRA_MPI_OVERLAP differs between the ranks" -- mpirun --allow-run-as-root --oversubscribe \
  -np 1 -x HYDRA_MPI_OVERLAP=0 "${one[@]}" : -np 1 "${one[@]}"
# Without --threads, each rank takes the cores divided by the ranks on the machine.
"${mpi[@]}" "$hydra" train "$dir/model" --data "$dir/train.bin" --steps 1 --seq 16 --batch 2 --out "$dir/banner" \
  >"$dir/banner.log" 2>&1
check "rank 0 alone prints the banner" test "$(grep -c '^hydra train:' "$dir/banner.log")" -eq 1
check "threads per rank in the banner" grep -q "threads: $(($(nproc) / 2 > 0 ? $(nproc) / 2 : 1)) per rank (2 MPI ranks, 2 on this machine)" \
  "$dir/banner.log"

# ---- head parallel: 3 heads on 2 ranks (heads 0,1 on rank 0, head 2 on rank 1) ----
heads=(--shard-by-head --batch 2 --parallel heads)
expect 0 "done: 4 steps" -- "$hydra" train "$dir/model" "${common[@]}" "${heads[@]}" --freeze 'trunk.*' --out "$dir/one-frozen"
expect 0 "rank 0: head(s) 0,1; rank 1: head(s) 2" -- "${mpi[@]}" "$hydra" train "$dir/model" "${common[@]}" "${heads[@]}" \
  --freeze 'trunk.*' --out "$dir/hp-frozen"
same_run "head parallel, trunk frozen" "$dir/one-frozen" "$dir/hp-frozen"
expect 0 "done: 4 steps" -- "$hydra" train "$dir/model" "${common[@]}" "${heads[@]}" "${val[@]}" --out "$dir/one-trunk"
expect 0 "(trunk trains)" -- "${mpi[@]}" "$hydra" train "$dir/model" "${common[@]}" "${heads[@]}" "${val[@]}" \
  --out "$dir/hp-trunk"
same_run "head parallel, trunk trained" "$dir/one-trunk" "$dir/hp-trunk"
# Head 2 on its own data, much shorter than the shared data: its rank wraps around its epochs as one
# process would, and never waits for the others.
expect 0 "done: 4 steps" -- "$hydra" train "$dir/model" "${common[@]}" --batch 2 --head-data 2="$dir/short.bin" \
  --freeze 'trunk.*' --out "$dir/one-short"
expect 0 "done: 4 steps" -- "${mpi[@]}" "$hydra" train "$dir/model" "${common[@]}" --batch 2 --parallel heads \
  --head-data 2="$dir/short.bin" --freeze 'trunk.*' --out "$dir/hp-short"
same_run "head parallel, a head on shorter data" "$dir/one-short" "$dir/hp-short"
expect 2 "3 trained head(s) cannot be split over 4 MPI ranks" -- \
  mpirun --allow-run-as-root --oversubscribe -np 4 "$hydra" train "$dir/model" "${common[@]}" "${heads[@]}" \
  --out "$dir/hp-too-many"

# ---- failures ----
# Rank 1 SIGKILLs itself before its micro-batch of step 4. (Not step 3: rank 1 may get there while rank 0
# still writes the checkpoint of step 2, which the kill would then interrupt, atomically, leaving no
# checkpoint to resume from; step 3's sums wait for rank 0, so by step 4 the checkpoint is complete.)
start=$SECONDS
HYDRA_TEST_KILL_AT=micro:4:1 "${mpi[@]}" "$hydra" train "$dir/model" "${common[@]}" --batch 2 --save-every 2 \
  "${val[@]}" --out "$dir/killed" >"$dir/killed.log" 2>&1
rc=$?
check "a killed rank ends the job non-zero (exit $rc)" test $rc -ne 0
check "... within 30 s (took $((SECONDS - start)) s)" test $((SECONDS - start)) -le 30
check "the checkpoint of step 2 survives" test -d "$dir/killed/checkpoints/step_00000002"
expect 0 "resuming at step 2" -- "${mpi[@]}" "$hydra" train "$dir/model" "${common[@]}" --batch 2 --save-every 2 \
  "${val[@]}" --out "$dir/killed" --resume
same_run "resumed after a killed rank" "$dir/dp-shuffle" "$dir/killed"
# A rank that hangs (SIGSTOP) instead: the other one gives up at the deadline and ends the job.
start=$SECONDS
HYDRA_MPI_TIMEOUT=3 HYDRA_TEST_KILL_AT=stop:3:1 "${mpi[@]}" "$hydra" train "$dir/model" "${common[@]}" --batch 2 \
  --out "$dir/hung" >"$dir/hung.log" 2>&1
rc=$?
check "a hung rank ends the job non-zero (exit $rc)" test $rc -ne 0
check "... at the deadline (took $((SECONDS - start)) s)" test $((SECONDS - start)) -le 30
check "... saying why" grep -q "no answer from the other ranks for 3 s" "$dir/hung.log"

expect 2 "trained by 2 process(es) (MPI ranks) and this run has 1" -- "$hydra" train "$dir/model" "${common[@]}" \
  --batch 2 --out "$dir/dp-shuffle" --resume
EXPECT_STDERR=1 expect 2 "LoRA dropout is not supported across several processes" -- "${mpi[@]}" "$hydra" train \
  "$dir/model" "${common[@]}" --batch 2 --train-heads 0 --lora-rank 2 --lora-dropout 0.1 --out "$dir/lora"
check "a refused run writes nothing" test ! -e "$dir/lora"
for a in 1 2 3 4; do echo "{\"prompt\": \"$a+$a=\", \"answer\": \"$((a + a))\"}"; done >"$dir/qa.jsonl"
EXPECT_STDERR=1 expect 2 "uncertainty is not supported across several processes" -- "${mpi[@]}" "$hydra" train \
  "$dir/model" --objective uncertainty --sft "$dir/qa.jsonl" --tokenizer "$tiny" --judge-head 2 --answer-head 0 \
  --judge-tokens 1,0 --steps 1 --batch 2 --seq 64 --out "$dir/judge"

echo "mpi.sh: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
