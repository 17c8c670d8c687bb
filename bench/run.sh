#!/usr/bin/env bash
# The benchmark in one command: installs what is missing (PyTorch and its best BLAS and allocator, GNU
# time), builds Release, runs Hydra and PyTorch side by side on the same presets and work
# (bench/model_vs_torch.py) and rewrites the results table in bench/README.md.
#
#   bash bench/run.sh [--quick] [--no-readme] [any bench/model_vs_torch.py option ...]
#
# --quick: tiny only, one round of one iteration (a smoke test of the whole pipeline, ~1 minute; its
# table is not written into the README). The full run (3 presets × 4 works × 3 rounds) takes about half
# an hour on 2 quiet cores; run it on a machine nobody else is using, since both sides are timed by the
# wall clock.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

readme=(--readme bench/README.md)
args=()
for arg in "$@"; do
  case "$arg" in
    --quick) args+=(--presets tiny --rounds 1 --iters 1); readme=() ;;
    --no-readme) readme=() ;;
    *) args+=("$arg") ;;
  esac
done

bash scripts/install-deps.sh --bench
bash scripts/build.sh build -- bench_model bench_roofline hydra
echo "bench/run.sh: load average $(cut -d' ' -f1-3 /proc/loadavg) before the run"
exec /usr/bin/python3 bench/model_vs_torch.py --build build ${readme[@]+"${readme[@]}"} ${args[@]+"${args[@]}"}
