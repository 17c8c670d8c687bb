#!/usr/bin/env bash
# README command 1: install what is missing, build Release with every core, run the demo.
#
#   bash scripts/run.sh [--quick] [--out DIR]
#
# The demo (scripts/demo.sh, which says what each step does) trains a small Hydra from scratch on the
# King James Bible, fine-tunes each of its three heads on its own part of the book with the trunk
# frozen, evaluates the heads and their ensemble, and prints a sample from each head and from
# speculative decoding: under 6 minutes on 2 idle cores (--quick: the same steps, smaller, well under 2
# minutes). It writes everything under runs/demo (runs/demo-quick), or DIR.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# The arguments are checked before anything is installed or built.
args=("$@")
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) ;;
    --out)
      if [[ $# -lt 2 || -z "$2" ]]; then
        echo "run.sh: --out needs a directory" >&2
        echo "usage: bash scripts/run.sh [--quick] [--out DIR]" >&2
        exit 2
      fi
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "run.sh: unknown argument '$1'" >&2
      echo "usage: bash scripts/run.sh [--quick] [--out DIR]" >&2
      exit 2
      ;;
  esac
  shift
done

bash scripts/install-deps.sh
# Only the `hydra` target: the demo needs nothing else, and the tests are test.sh's business.
bash scripts/build.sh build -- hydra
exec bash scripts/demo.sh build "${args[@]}"
