"""Hydra vs PyTorch on the same HydraTransformer presets and the same work, in one run.

For each preset (bench/presets.py: tiny, small, gpt2) and each work (train: a full training step;
finetune: the trunk frozen; lora: rank-8 adapters on every head's w1, w2, w3; decode: KV-cached greedy
decoding, batch 1, 16-token prompt, 128 new tokens, mean of all heads; forward: inference of every
head's logits; decode-bf16: the same decoding with bfloat16 weights, against Hydra's own float32 decoding,
not PyTorch), runs Hydra's bench_model and bench/torch_hydra.py as separate processes, alternating
them for --rounds rounds (the machines are shared and noisy: interleaving spreads the noise over both),
each under /usr/bin/time -v for its peak resident memory. bench_roofline runs before and after, so the
rates can be read against this machine's GEMM and memory-bandwidth ceilings measured in the same run.
Prints the medians and ratios as a Markdown table, and with --readme rewrites the table in that file
between its markers.

PyTorch runs at its best settings on this machine, not Debian's defaults: OpenBLAS's OpenMP build (via
LD_LIBRARY_PATH; the default pthreads build oversubscribes next to PyTorch's OpenMP pool), tcmalloc
(LD_PRELOAD, package libgoogle-perftools4), and OMP_NUM_THREADS = --threads.

Usage (from the repo root, after building; bench/run.sh does both):
  /usr/bin/python3 bench/model_vs_torch.py [--build build] [--presets tiny,small,gpt2]
      [--works train,finetune,lora,decode,decode-bf16] [--threads 2] [--rounds 3] [--iters 3] [--warmup 1]
      [--readme bench/README.md] [--note TEXT] [--torch-omp-passive]
"""
import argparse
import datetime
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from presets import DECODE_NEW, PRESETS, decode_bytes_per_token, model_params, step_flops  # noqa: E402

ARCH_LIB = "/usr/lib/x86_64-linux-gnu"
OPENBLAS_OPENMP = f"{ARCH_LIB}/openblas-openmp"
TCMALLOC = f"{ARCH_LIB}/libtcmalloc.so.4"
BEGIN, END = "<!-- model_vs_torch: begin -->", "<!-- model_vs_torch: end -->"

# The targets (speed = Hydra tokens/s ÷ PyTorch's; memory = Hydra peak ÷ PyTorch's).
SPEED_TARGET = {
    "train": {"tiny": 1.3, "small": 1.1, "gpt2": 1.1},
    "decode": {"tiny": 3.0, "small": 2.0, "gpt2": 1.5},
    "decode-bf16": {"small": 1.7, "gpt2": 1.7},  # against Hydra's own float32 decoding
}
SPEED_TARGET["finetune"] = SPEED_TARGET["lora"] = SPEED_TARGET["train"]
MEMORY_TARGET = 0.5  # training works
DECODE_BOUND_TARGET = 0.8  # fraction of the read-bandwidth bound


def run(cmd, env):
    """Runs cmd under /usr/bin/time -v; returns (the RESULT or ROOFLINE fields, peak RSS in MB)."""
    p = subprocess.run(["/usr/bin/time", "-v"] + cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"model_vs_torch: {' '.join(cmd)} failed (exit {p.returncode}):\n{p.stdout}\n{p.stderr}")
    fields = None
    for line in p.stdout.splitlines():
        if line.startswith(("RESULT ", "ROOFLINE ")):
            print(line, flush=True)
            fields = dict(kv.split("=", 1) for kv in line.split()[1:])
    if fields is None:
        sys.exit(f"model_vs_torch: no RESULT line from {' '.join(cmd)}:\n{p.stdout}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    if not m:
        sys.exit(f"model_vs_torch: no peak memory in /usr/bin/time output of {' '.join(cmd)}")
    return fields, int(m.group(1)) / 1024.0


def load_average():
    return os.getloadavg()[0]


def machine_description():
    cpu = "unknown CPU"
    flags = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and cpu == "unknown CPU":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    isa = "AVX-512 with avx512_bf16" if "avx512_bf16" in flags else ("AVX-512" if "avx512f" in flags else "AVX2")
    try:
        import importlib.metadata
        torch_version = importlib.metadata.version("torch")
    except Exception:  # Debian's torch has no dist-info on some installs
        torch_version = subprocess.run(["/usr/bin/python3", "-c", "import torch; print(torch.__version__)"],
                                       capture_output=True, text=True).stdout.strip()
    blas = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libopenblas0-pthread"], capture_output=True,
                          text=True).stdout.strip()
    gxx = subprocess.run(["g++", "-dumpfullversion"], capture_output=True, text=True).stdout.strip()
    return f"{cpu} ({isa}), {os.cpu_count()} cores; g++ {gxx}, OpenBLAS {blas}, PyTorch {torch_version}"


def blas_cores(hydra_cli, hydra_env, torch_env):
    """The OpenBLAS kernel set each side runs: Hydra's from `hydra version`, PyTorch's from its library."""
    out = subprocess.run([hydra_cli, "version"], env=hydra_env, capture_output=True, text=True).stdout
    m = re.search(r", core (\S+)", out)
    probe = ("import ctypes; lib = ctypes.CDLL('libopenblas.so.0'); lib.openblas_get_corename.restype = "
             "ctypes.c_char_p; print(lib.openblas_get_corename().decode())")
    torch_core = subprocess.run(["/usr/bin/python3", "-c", probe], env=torch_env, capture_output=True,
                                text=True).stdout.strip()
    return (m.group(1) if m else "unknown"), (torch_core or "unknown")


def fmt_range(values, digits):
    return f"{min(values):.{digits}f}–{max(values):.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="build directory holding bench_model and bench_roofline")
    ap.add_argument("--presets", default="tiny,small,gpt2")
    ap.add_argument("--works", default="train,finetune,lora,decode,decode-bf16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--readme", help="rewrite the results between the markers of this file")
    ap.add_argument("--note", default="", help="a sentence printed under the table (e.g. the machine's state)")
    ap.add_argument("--blas-core", choices=("auto", "env"), default="auto",
                    help="auto (default): OpenBLAS picks its kernels for this CPU on both sides (OPENBLAS_CORETYPE "
                         "removed from the environment); env: keep the environment's OPENBLAS_CORETYPE")
    ap.add_argument("--torch-omp-passive", action="store_true",
                    help="OMP_WAIT_POLICY=PASSIVE for PyTorch (kinder to a shared machine; not its best setting)")
    a = ap.parse_args()

    here = os.path.dirname(os.path.abspath(__file__))
    bench_model = os.path.join(a.build, "bench_model")
    roofline = os.path.join(a.build, "bench_roofline")
    hydra_cli = os.path.join(a.build, "hydra")
    for path, what in [(bench_model, "build it: bash bench/run.sh does"),
                       (hydra_cli, "build it: bash bench/run.sh does"),
                       (roofline, "build it: bash bench/run.sh does"),
                       ("/usr/bin/time", "install the Debian package 'time'"),
                       (TCMALLOC, "install the Debian package 'libgoogle-perftools4'"),
                       (OPENBLAS_OPENMP, "install the Debian package 'libopenblas0-openmp'")]:
        if not os.path.exists(path):
            sys.exit(f"model_vs_torch: {path} not found; {what}")
    presets, works = a.presets.split(","), a.works.split(",")
    for p in presets:
        if p not in PRESETS:
            sys.exit(f"model_vs_torch: unknown preset '{p}' (known: {', '.join(PRESETS)})")
    for w in works:
        if w not in ("forward", "train", "finetune", "lora", "decode", "decode-bf16"):
            sys.exit(f"model_vs_torch: unknown work '{w}' (known: forward, train, finetune, lora, decode, "
                     "decode-bf16)")

    base_env = dict(os.environ)
    forced_core = base_env.get("OPENBLAS_CORETYPE")
    if a.blas_core == "auto":
        # Some machines' environments force one kernel set (e.g. OPENBLAS_CORETYPE=Haswell, AVX2, on an
        # AVX-512 CPU); both sides at their best run the kernels OpenBLAS picks for the CPU.
        base_env.pop("OPENBLAS_CORETYPE", None)
    torch_env = dict(base_env, LD_LIBRARY_PATH=OPENBLAS_OPENMP, LD_PRELOAD=TCMALLOC,
                     OMP_NUM_THREADS=str(a.threads))
    if a.torch_omp_passive:
        torch_env["OMP_WAIT_POLICY"] = "PASSIVE"
    hydra_env = dict(base_env, HYDRA_NUM_THREADS=str(a.threads))
    cores = blas_cores(hydra_cli, hydra_env, torch_env)
    started = datetime.datetime.now(datetime.timezone.utc)
    loads = [load_average()]

    def measure_roofline():
        fields, _ = run([roofline, "--threads", str(a.threads)], hydra_env)
        return {k: float(fields[k]) for k in ("sgemm_gflops", "triad_gbs", "read_gbs")}

    roof = [measure_roofline()]

    rows = []
    bf16_paths = set()
    scratch = tempfile.mkdtemp(prefix="hydra-bench-")
    for preset in presets:
        c = PRESETS[preset]
        for work in works:
            # decode-bf16 compares Hydra with bfloat16 weights against Hydra's float32 (the "torch" side).
            mode = "decode" if work == "decode-bf16" else work
            common = ["--preset", preset, "--mode", mode, "--batch", str(c["batch"]), "--seq", str(c["seq"]),
                      "--iters", str(a.iters), "--warmup", str(a.warmup), "--threads", str(a.threads)]
            # decode-bf16: the bf16 side loads a model directory as `hydra generate --dtype bf16` does
            # (converted while read: its peak memory is the command line's); the float32 side is the decode
            # row's model built in memory, which decoded faster than one loaded from a file in every trial
            # (bench/README.md), so the ratio is against the faster float32.
            bf16_args = []
            if work == "decode-bf16":
                model_dir = os.path.join(scratch, preset)
                if not os.path.exists(model_dir):
                    subprocess.run([hydra_cli, "init", "--preset", preset, "--out", model_dir], env=hydra_env,
                                   check=True, capture_output=True)
                bf16_args = ["--model-dir", model_dir, "--dtype", "bf16"]
            runs = {"hydra": [], "torch": []}
            for _ in range(a.rounds):
                for impl in ("hydra", "torch"):
                    if impl == "hydra":
                        cmd, env = [bench_model] + common + bf16_args, hydra_env
                    elif work == "decode-bf16":
                        cmd, env = [bench_model] + common, hydra_env
                    else:
                        cmd, env = ["/usr/bin/python3", os.path.join(here, "torch_hydra.py")] + common, torch_env
                    fields, peak = run(cmd, env)
                    if "bf16_path" in fields:
                        bf16_paths.add(fields["bf16_path"])
                    runs[impl].append((float(fields["median_s"]), peak))
                loads.append(load_average())
            rows.append((preset, work, runs))
    shutil.rmtree(scratch)
    roof.append(measure_roofline())
    loads.append(load_average())

    sgemm = statistics.median(r["sgemm_gflops"] for r in roof)
    read_gbs = statistics.median(r["read_gbs"] for r in roof)
    triad_gbs = statistics.median(r["triad_gbs"] for r in roof)

    out = []
    out.append(f"### {started:%Y-%m-%d}: {machine_description()}")
    out.append("")
    out.append(f"{a.threads} threads; {a.rounds} rounds alternating the two, each a process timing {a.iters} "
               f"iterations after {a.warmup} warm-up; medians over the rounds (min–max of the rounds' own "
               f"medians). Load average {min(loads):.1f}–{max(loads):.1f} during the run"
               f"{'; PyTorch with OMP_WAIT_POLICY=PASSIVE' if a.torch_omp_passive else ''}. "
               f"OpenBLAS kernels: {cores[0]} (Hydra, and `bench_roofline`), {cores[1]} (PyTorch)"
               f"{f'; the environment had OPENBLAS_CORETYPE={forced_core}' if forced_core else ''}"
               f"{', removed for the run (--blas-core auto)' if forced_core and a.blas_core == 'auto' else ''}. "
               f"This machine's ceilings, measured in the same run (`bench_roofline`): one single-threaded "
               f"`cblas_sgemm` per thread at 2048×512·512×2048, **{sgemm:.0f} GFLOP/s** together; read bandwidth "
               f"**{read_gbs:.1f} GB/s** (triad {triad_gbs:.1f} GB/s).")
    out.append("")
    out.append("| preset | work | tokens | PyTorch s | Hydra s | speed (× PyTorch) | target | Hydra rate | "
               "PyTorch peak MB | Hydra peak MB | memory (× PyTorch) |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    verdicts = []
    for preset, work, runs in rows:
        c = PRESETS[preset]
        th = [t for t, _ in runs["hydra"]]
        tt = [t for t, _ in runs["torch"]]
        ratios = [t / h for t, h in zip(tt, th)]
        mh, mt = max(m for _, m in runs["hydra"]), max(m for _, m in runs["torch"])
        med_h, med_t = statistics.median(th), statistics.median(tt)
        speed = med_t / med_h
        target = SPEED_TARGET.get(work, {}).get(preset)
        ok = target is None or speed >= target
        if work == "decode":
            tokens = DECODE_NEW
            bound = read_gbs * 1e9 / decode_bytes_per_token(c)
            frac = tokens / med_h / bound
            rate = f"{tokens / med_h:.1f} tok/s = {100 * frac:.0f}% of the bandwidth bound ({bound:.0f} tok/s)"
            ok = ok and frac >= DECODE_BOUND_TARGET
            target_text = f"≥ {target}× and ≥ 80% of bound" if target else ""
        elif work == "decode-bf16":
            tokens = DECODE_NEW
            bound = read_gbs * 1e9 / (decode_bytes_per_token(c) / 2)
            rate = (f"{tokens / med_h:.1f} tok/s = {100 * tokens / med_h / bound:.0f}% of the bf16 bound "
                    f"({bound:.0f} tok/s); float32 {tokens / med_t:.1f}")
            target_text = f"≥ {target}× Hydra float32" if target else ""
        elif work == "forward":
            tokens = c["batch"] * c["seq"]
            rate = f"{tokens / med_h:.0f} tok/s"
            target_text = ""
        else:
            tokens = c["batch"] * c["seq"]
            flops = step_flops(c, work, c["batch"], c["seq"])
            gf = flops / med_h / 1e9
            rate = f"{gf:.0f} GFLOP/s = {100 * gf / sgemm:.0f}% of sgemm (PyTorch {flops / med_t / 1e9:.0f})"
            target_text = f"≥ {target}×, memory ≤ {MEMORY_TARGET}×" if target else ""
            ok = ok and mh / mt <= MEMORY_TARGET
        mark = "" if not target_text else (" ✓" if ok else " ✗")
        if target_text:  # a row without a target (tiny's decode-bf16) is not counted either way
            verdicts.append(ok)
        label = f"{preset} ({model_params(c) / 1e6:.1f}M)" if work == works[0] else preset
        out.append(f"| {label} | {work} | {tokens} | {med_t:.3f} | {med_h:.3f} | **{speed:.2f}** "
                   f"({fmt_range(ratios, 2)}) | {target_text}{mark} | {rate} | {mt:.0f} | {mh:.0f} | "
                   f"**{mh / mt:.2f}** |")
    out.append("")
    if "decode-bf16" in works:
        out.append("decode-bf16: the \"PyTorch\" columns are Hydra's own float32 decoding (the bf16 target is "
                   "relative to it); the bf16 product ran on the "
                   f"{', '.join(sorted(bf16_paths)) or 'unknown'} path. bf16 loads a model directory as "
                   "`hydra generate --dtype bf16` does (converted while it is read); float32 is the decode row's "
                   "model, built in memory (faster than one loaded from a file). Memory: bf16's peak ÷ float32's.")
        out.append("")
    out.append("Tokens: the tokens one iteration processes (batch × seq; for decode the 128 new tokens, timed "
               "without the 16-token prompt's prefill). GFLOP/s: bench/presets.py's count (6 × the weights "
               "a token trains, 4 × those it only backpropagates through, 2 × those it only runs forward, "
               "plus causal attention). Decode's bound: the read bandwidth ÷ the float32 weight bytes a token "
               "reads (trunk, every head, the lm_head once).")
    if a.note:
        out.append("")
        out.append(a.note)
    table = "\n".join(out)
    print("\n" + table)
    print(f"\n{sum(verdicts)} of {len(verdicts)} rows meet their targets")

    if a.readme:
        text = open(a.readme).read()
        if BEGIN not in text or END not in text:
            sys.exit(f"model_vs_torch: {a.readme} has no '{BEGIN}' ... '{END}' markers to write between")
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        tmp = a.readme + ".tmp"
        with open(tmp, "w") as f:
            f.write(head + BEGIN + "\n" + table + "\n" + END + tail)
        os.replace(tmp, a.readme)
        print(f"model_vs_torch: wrote the table into {a.readme}")


if __name__ == "__main__":
    main()
