#!/usr/bin/env bash
# README command 1: install what is missing, build Release with every core, run the main job.
#
#   bash scripts/run.sh [ARGS...]
#
# Until the model and training land, the main job is `hydra selfcheck`: a tiny MLP built from the
# autograd ops fitted for a few seconds, printing its falling loss. ARGS are passed to it
# (e.g. --steps 200 --seed 7).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

bash scripts/install-deps.sh
# Only the `hydra` target: the main job needs nothing else, and the tests are test.sh's business.
bash scripts/build.sh build -- hydra
echo "==> build/hydra selfcheck $*"
exec build/hydra selfcheck "$@"
