#!/usr/bin/env bash
# Data-parallel training over MPI against threads, on one machine: the same step (B x T tokens, the same
# bytes at the end) run three ways, alternating, ROUNDS times:
#   1x2        one process, 2 threads, --batch B/2 --grad-accum 2
#   2x1        mpirun -np 2, 1 thread each, --batch B/2 (the gradient sums overlapped with backward)
#   2x1-after  the same with HYDRA_MPI_OVERLAP=0 (the whole gradient slab summed after backward)
# For each: tokens/s (median over steps 2..N of metrics.csv) and the share of the step spent inside the
# collectives (communication_s / step time, median), and whether the final weights equal 1x2's bytes.
#
#   bash bench/mpi_vs_threads.sh [PRESET [STEPS [ROUNDS]]]     (defaults: small 4 3)
#
# Needs a Release build with MPI (bash scripts/build.sh) and mpirun. --bind-to none: with Open MPI's
# default binding each rank is pinned to one core, and on a shared machine a pinned rank cannot move to
# the core that is free (bench/README.md measured it at half speed).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
hydra=${HYDRA_BIN:-$root/build/hydra}
preset=${1:-small}
steps=${2:-4}
rounds=${3:-3}
B=8 T=256
[[ $preset == tiny ]] && T=128
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

"$hydra" init --preset "$preset" --seed 1 --out "$dir/model" >/dev/null
vocab=$(python3 -c "import json; print(json.load(open('$dir/model/config.json'))['base_config']['vocab_size'])")
# Random token ids, enough for every step without wrapping around.
python3 - "$dir/train.bin" "$vocab" $((B * (T + 1) * (steps + 2))) <<'EOF'
import random, struct, sys
path, vocab, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(0)
open(path, "wb").write(struct.pack(f"<{n}H", *(rng.randrange(min(vocab, 65535)) for _ in range(n))))
EOF

common=(train "$dir/model" --data "$dir/train.bin" --data-order sequential --steps "$steps" --seq "$T" --warmup 1
        --save-every 0 --log-every 1)
mpi=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2)

# The median over steps 2..N of metrics.csv's COL; with TOKENS, of COL over the step's time (tokens/s).
median() {
  python3 - "$@" <<'EOF'
import csv, statistics, sys
path, col = sys.argv[1], sys.argv[2]
tokens = float(sys.argv[3]) if len(sys.argv) > 3 else None
rows = [r for r in csv.DictReader(open(path)) if int(r["step"]) >= 2]
vals = [float(r[col]) * (float(r["tokens_per_s"]) / tokens if tokens else 1.0) for r in rows]
print(f"{statistics.median(vals):.4g}" if vals else "nan")
EOF
}

printf "%-6s %-10s %10s %14s %6s %8s\n" round config load "tokens/s" comm "same"
for r in $(seq 1 "$rounds"); do
  for cfg in 1x2 2x1 2x1-after; do
    out="$dir/$cfg-$r"
    load=$(cut -d' ' -f1 /proc/loadavg)
    case $cfg in
      1x2) "$hydra" "${common[@]}" --batch $((B / 2)) --grad-accum 2 --threads 2 --out "$out" >/dev/null ;;
      2x1) "${mpi[@]}" "$hydra" "${common[@]}" --batch $((B / 2)) --threads 1 --out "$out" >/dev/null ;;
      2x1-after) HYDRA_MPI_OVERLAP=0 "${mpi[@]}" "$hydra" "${common[@]}" --batch $((B / 2)) --threads 1 \
                   --out "$out" >/dev/null ;;
    esac
    same=-
    [[ $cfg != 1x2 ]] && { cmp -s "$out/model.safetensors" "$dir/1x2-$r/model.safetensors" && same=yes || same=NO; }
    comm=$(median "$out/metrics.csv" communication_s $((B * T)))
    printf "%-6s %-10s %10s %14s %6s %8s\n" "$r" "$cfg" "$load" "$(median "$out/metrics.csv" tokens_per_s)" "$comm" "$same"
  done
done
