#!/usr/bin/env bash
# Installs the Debian packages Hydra needs to build and test, and only those that are missing.
#   bash scripts/install-deps.sh           what the build, the tests and the fuzzers need
#   bash scripts/install-deps.sh --bench   also what bench/model_vs_torch.py needs to run PyTorch as the
#                                          baseline (python3-torch, its best BLAS and allocator, GNU time)
#
# Idempotent and quiet: when everything is installed it prints nothing and touches nothing (not even
# `apt-get update`), so the README commands can call it on every run. Runs apt-get through sudo only
# when not already root, and never asks a question (DEBIAN_FRONTEND=noninteractive, -y).
set -euo pipefail

# Why each package (CMakeLists.txt names the same package when a find_package fails):
PACKAGES=(
  g++ cmake make pkg-config   # the toolchain
  libopenblas-dev             # OpenBLAS development files
  libopenblas-pthread-dev     # ...whose cblas.h CMake looks for (libopenblas-dev may pick another variant)
  libopenblas0-pthread        # the OpenBLAS we link, run at one thread: TBB owns the threads (tensor/parallel.h)
  libtbb-dev                  # oneTBB: every parallel loop
  libeigen3-dev               # Eigen
  doctest-dev                 # the unit tests
  libzstd-dev                 # compressed token data and checkpoints
  zstd                        # the zstd tool: the CLI tests make .zst files with it; the demo unpacks its corpus
  gnuplot-nox                 # hydra train draws loss.svg with it (the demo's loss curves)
  nlohmann-json3-dev          # configs, checkpoint metadata
  libcli11-dev                # the hydra command line
  libpcre2-dev                # Unicode regex for the tokenizer
  clang libclang-rt-14-dev    # libFuzzer and its sanitizer runtimes (scripts/fuzz.sh)
  libopenmpi-dev openmpi-bin  # Open MPI: multi-process training (mpirun hydra train; docs/distributed.md)
)
if [[ "${1:-}" == "--bench" ]]; then
  PACKAGES+=(
    python3-torch python3-numpy  # the baseline model (bench/torch_hydra.py), run by /usr/bin/python3
    libopenblas0-openmp          # PyTorch's fastest BLAS here (its OpenMP pool; see bench/README.md)
    libgoogle-perftools4         # tcmalloc, preloaded for PyTorch
    time                         # /usr/bin/time -v: peak memory of each run
  )
elif [[ $# -gt 0 ]]; then
  echo "install-deps: unknown option '$1' (expected nothing or --bench)" >&2
  exit 2
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: dpkg-query not found; this script supports Debian 12 (install the packages" \
       "listed in scripts/install-deps.sh by hand on other systems)" >&2
  exit 1
fi

missing=()
for package in "${PACKAGES[@]}"; do
  # db:Status-Status is exactly "installed" for a fully installed package ("config-files", "half-installed"
  # and unknown packages all count as missing).
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  if [[ "$status" != "installed" ]]; then
    missing+=("$package")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "install-deps: need root to install ${missing[*]}, and sudo is not available" >&2
    exit 1
  fi
  sudo_cmd=(sudo)
fi
# `env` passes DEBIAN_FRONTEND through sudo, which would otherwise drop it.
apt=("${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -y -q)
"${apt[@]}" update
"${apt[@]}" install --no-install-recommends "${missing[@]}"
