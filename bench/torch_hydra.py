"""The PyTorch half of bench/model_vs_torch.py: the same HydraTransformer preset, the same work, timed
the same way as bench/model.cpp.

A plain eager PyTorch model of OLMo-2 blocks (PyTorch 1.13 has no fused attention on CPU: the causal
attention is the usual masked softmax of Q·Kᵀ, as HF's eager implementation does). Float32 throughout.

  forward: under torch.inference_mode(): logits of every head, (heads, B, T, vocab).
  train:   one full training step, as hydra train takes it: forward with autograd, loss = mean over heads
           of each head's mean cross-entropy against the inputs shifted by one, backward,
           clip_grad_norm_(1.0), torch.optim.AdamW(lr 3e-4, betas (0.9, 0.95), weight decay 0.1 on 2-D
           weights but the embedding). finetune: the same with the trunk frozen (its forward under
           no_grad, its parameters without requires_grad). Gradients
           are dropped before each step (zero_grad(set_to_none=True)).

Run it with Debian's /usr/bin/python3 (the python3 that imports torch); model_vs_torch.py starts it with
PyTorch's best settings on this machine (OpenMP OpenBLAS, tcmalloc, OMP_NUM_THREADS).
Prints one line per mode in the same RESULT format as bench_model.
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

# The presets of hydra/config.cpp that the benchmark uses (only the fields the model needs).
PRESETS = {
    "tiny": dict(vocab=4096, d=256, layers=4, heads=4, kv_heads=4, ffn=1024, trunk=2, n_heads=3),
    "small": dict(vocab=16384, d=512, layers=8, heads=8, kv_heads=8, ffn=2048, trunk=6, n_heads=4),
}
EPS = 1e-6
ROPE_THETA = 500000.0


class RMSNorm(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * self.weight


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Block(torch.nn.Module):
    """OLMo-2: h = x + norm(attention(x)); out = h + norm(ffn(h)), QK-norm over the full width."""

    def __init__(self, c):
        super().__init__()
        d, hd = c["d"], c["d"] // c["heads"]
        self.n_heads, self.n_kv, self.hd = c["heads"], c["kv_heads"], hd
        self.w_q = torch.nn.Linear(d, d, bias=False)
        self.w_k = torch.nn.Linear(d, self.n_kv * hd, bias=False)
        self.w_v = torch.nn.Linear(d, self.n_kv * hd, bias=False)
        self.w_out = torch.nn.Linear(d, d, bias=False)
        self.q_norm, self.k_norm = RMSNorm(d), RMSNorm(self.n_kv * hd)
        self.attention_norm, self.feed_forward_norm = RMSNorm(d), RMSNorm(d)
        self.w1 = torch.nn.Linear(d, c["ffn"], bias=False)
        self.w3 = torch.nn.Linear(d, c["ffn"], bias=False)
        self.w2 = torch.nn.Linear(c["ffn"], d, bias=False)

    def attention(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_norm(self.w_q(x)).view(B, T, self.n_heads, self.hd).transpose(1, 2)
        k = self.k_norm(self.w_k(x)).view(B, T, self.n_kv, self.hd).transpose(1, 2)
        v = self.w_v(x).view(B, T, self.n_kv, self.hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        if self.n_kv != self.n_heads:
            rep = self.n_heads // self.n_kv
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd))
        probs = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
        y = torch.matmul(probs, v).transpose(1, 2).reshape(B, T, -1)
        return self.w_out(y)

    def forward(self, x, cos, sin, mask):
        h = x + self.attention_norm(self.attention(x, cos, sin, mask))
        return h + self.feed_forward_norm(self.w2(F.silu(self.w1(h)) * self.w3(h)))


class HydraTorch(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embeddings = torch.nn.Embedding(c["vocab"], c["d"])
        self.trunk = torch.nn.ModuleList(Block(c) for _ in range(c["trunk"]))
        self.heads = torch.nn.ModuleList(
            torch.nn.ModuleList(Block(c) for _ in range(c["layers"] - c["trunk"])) for _ in range(c["n_heads"]))
        self.norm = RMSNorm(c["d"])
        self.w_out = torch.nn.Linear(c["d"], c["vocab"], bias=False)
        for p in self.parameters():  # OLMo-core's init: truncated normal, std 0.02; norms stay 1
            if p.dim() == 2:
                torch.nn.init.trunc_normal_(p, std=0.02, a=-0.06, b=0.06)

    def forward(self, ids, trunk_no_grad=False):
        T, hd = ids.shape[1], self.c["d"] // self.c["heads"]
        inv = 1.0 / (ROPE_THETA ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        angles = torch.outer(torch.arange(T, dtype=torch.float32), inv)
        angles = torch.cat((angles, angles), dim=-1)
        cos, sin = angles.cos(), angles.sin()
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not trunk_no_grad):
            x = self.embeddings(ids)
            for block in self.trunk:
                x = block(x, cos, sin, mask)
        out = []
        for head in self.heads:
            h = x
            for block in head:
                h = block(h, cos, sin, mask)
            out.append(self.w_out(self.norm(h)))
        return torch.stack(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    ap.add_argument("--mode", default="both", choices=["forward", "train", "finetune", "both"])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = HydraTorch(PRESETS[a.preset])
    tokens = torch.randint(0, PRESETS[a.preset]["vocab"], (a.batch, a.seq + 1), generator=torch.Generator().manual_seed(1234))
    inputs, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

    def report(mode, times):
        med = statistics.median(times)
        print(f"RESULT impl=torch preset={a.preset} mode={mode} batch={a.batch} seq={a.seq} "
              f"threads={torch.get_num_threads()} iters={len(times)} median_s={med:.6f} min_s={min(times):.6f} "
              f"tokens_per_s={a.batch * a.seq / med:.1f}", flush=True)

    if a.mode in ("forward", "both"):
        times = []
        for i in range(a.warmup + a.iters):
            t0 = time.perf_counter()
            with torch.inference_mode():
                logits = model(inputs)
            del logits
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
        report("forward", times)
    if a.mode in ("train", "finetune", "both"):
        finetune = a.mode == "finetune"
        if finetune:
            for m in [model.embeddings, model.trunk]:
                m.requires_grad_(False)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        decay = [p for n, p in named if p.dim() == 2 and "embeddings" not in n]
        decay_ids = set(id(p) for p in decay)
        groups = [{"params": decay, "weight_decay": 0.1},
                  {"params": [p for _, p in named if id(p) not in decay_ids], "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
        params = [p for _, p in named]
        times = []
        for i in range(a.warmup + a.iters):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            logits = model(inputs, trunk_no_grad=finetune)
            loss = sum(F.cross_entropy(logits[k].reshape(-1, logits.shape[-1]), targets.reshape(-1))
                       for k in range(logits.shape[0])) / logits.shape[0]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            del logits, loss
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
        report("finetune" if finetune else "train", times)


if __name__ == "__main__":
    main()
