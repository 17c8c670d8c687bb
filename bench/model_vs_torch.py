"""Hydra vs PyTorch on the same HydraTransformer presets, in one run.

For each preset (tiny, small) and each mode (forward; train = one full training step: forward, loss,
backward, clipping, AdamW; finetune = the same with the trunk frozen), runs Hydra's
bench_model and bench/torch_hydra.py as separate processes, alternating them for `--rounds` rounds (the
machines are shared and noisy: interleaving spreads the noise over both), each under /usr/bin/time -v
for its peak resident memory. Prints the medians and the ratios as a Markdown table.

PyTorch runs at its best settings on this machine, not Debian's defaults: OpenBLAS's OpenMP build (via
LD_LIBRARY_PATH; the default pthreads build oversubscribes next to PyTorch's OpenMP pool), tcmalloc
(LD_PRELOAD, package libgoogle-perftools4), and OMP_NUM_THREADS = --threads.

Usage (from the repo root, after building): /usr/bin/python3 bench/model_vs_torch.py [--build build]
        [--presets tiny,small] [--modes forward,train,finetune] [--threads 2] [--rounds 2] [--iters 5]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

ARCH_LIB = "/usr/lib/x86_64-linux-gnu"
OPENBLAS_OPENMP = f"{ARCH_LIB}/openblas-openmp"
TCMALLOC = f"{ARCH_LIB}/libtcmalloc.so.4"


def run_timed(cmd, env):
    """Runs cmd under /usr/bin/time -v; returns ({mode: median_s}, peak_rss_mb, the RESULT lines)."""
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"model_vs_torch: {' '.join(cmd)} failed (exit {p.returncode}):\n{p.stdout}\n{p.stderr}")
    medians, lines = {}, []
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            fields = dict(kv.split("=", 1) for kv in line.split()[1:])
            medians[fields["mode"]] = float(fields["median_s"])
            lines.append(line)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    if not m:
        sys.exit(f"model_vs_torch: no peak memory in /usr/bin/time output of {' '.join(cmd)}")
    return medians, int(m.group(1)) / 1024.0, lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="build directory holding bench_model")
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--modes", default="forward,train,finetune")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    a = ap.parse_args()

    here = os.path.dirname(os.path.abspath(__file__))
    bench_model = os.path.join(a.build, "bench_model")
    for path, what in [(bench_model, "build it: cmake --build build --target bench_model"),
                       ("/usr/bin/time", "install the Debian package 'time'"),
                       (TCMALLOC, "install the Debian package 'libgoogle-perftools4'"),
                       (OPENBLAS_OPENMP, "install the Debian package 'libopenblas0-openmp'")]:
        if not os.path.exists(path):
            sys.exit(f"model_vs_torch: {path} not found; {what}")

    torch_env = dict(os.environ, LD_LIBRARY_PATH=OPENBLAS_OPENMP, LD_PRELOAD=TCMALLOC,
                     OMP_NUM_THREADS=str(a.threads))
    hydra_env = dict(os.environ, HYDRA_NUM_THREADS=str(a.threads))
    common = ["--batch", str(a.batch), "--seq", str(a.seq), "--iters", str(a.iters), "--threads", str(a.threads)]

    rows = []
    for preset in a.presets.split(","):
        for mode in a.modes.split(","):
            times = {"hydra": [], "torch": []}
            peaks = {"hydra": [], "torch": []}
            for r in range(a.rounds):
                for impl in ("hydra", "torch"):
                    if impl == "hydra":
                        cmd = [bench_model, "--preset", preset, "--mode", mode] + common
                        env = hydra_env
                    else:
                        cmd = ["/usr/bin/python3", os.path.join(here, "torch_hydra.py"), "--preset", preset,
                               "--mode", mode] + common
                        env = torch_env
                    medians, peak, lines = run_timed(cmd, env)
                    for line in lines:
                        print(line, f"peak_rss_mb={peak:.0f}", flush=True)
                    times[impl].append(medians[mode])
                    peaks[impl].append(peak)
            t_h, t_t = statistics.median(times["hydra"]), statistics.median(times["torch"])
            m_h, m_t = max(peaks["hydra"]), max(peaks["torch"])
            tokens = a.batch * a.seq
            rows.append((preset, mode, t_t, t_h, t_t / t_h, tokens / t_t, tokens / t_h, m_t, m_h, m_h / m_t))

    print(f"\nbatch {a.batch}, seq {a.seq}, {a.threads} threads; medians of {a.rounds} runs × {a.iters} iterations; "
          "speed ratio = PyTorch time / Hydra time (> 1: Hydra faster); memory = peak RSS of the whole process")
    print("| preset | mode | PyTorch s | Hydra s | speed ratio | PyTorch tok/s | Hydra tok/s | PyTorch peak MB | "
          "Hydra peak MB | memory ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.3f} | {r[3]:.3f} | {r[4]:.2f} | {r[5]:.0f} | {r[6]:.0f} | {r[7]:.0f} | "
              f"{r[8]:.0f} | {r[9]:.2f} |")


if __name__ == "__main__":
    main()
