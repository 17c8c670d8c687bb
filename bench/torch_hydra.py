"""The PyTorch half of bench/model_vs_torch.py: the same HydraTransformer preset, the same work, timed
the same way as bench/model.cpp.

A plain eager PyTorch model of OLMo-2 blocks (PyTorch 1.13 has no fused attention on CPU: the causal
attention is the usual masked softmax of Q·Kᵀ, as HF's eager implementation does). Float32 throughout.
The shapes, batch and sequence length come from bench/presets.py.

  forward:  under torch.inference_mode(): logits of every head, (heads, B, T, vocab).
  train:    one full training step, as hydra train takes it: loss = mean over heads of each head's mean
            cross-entropy against the inputs shifted by one; backward; clip_grad_norm_(1.0);
            torch.optim.AdamW (lr 3e-4, betas (0.9, 0.95), weight decay 0.1 on 2-D weights but the
            embedding). The heads run one at a time, as Hydra's trainer does (and as a careful PyTorch
            user would, to hold one head's activations at a time): the trunk's output is detached, each
            head's loss is backpropagated into it in turn, then the trunk's backward runs once from the
            summed gradient. Gradients are dropped before each step (zero_grad(set_to_none=True)).
  finetune: the same with the trunk frozen (forward under no_grad, no requires_grad).
  lora:     the trunk, heads and lm_head frozen; rank-8 adapters (PEFT's layout: y = W·x + (α/r)·B·A·x,
            α = 2r, A Kaiming-uniform, B zero) on every head's w1, w2, w3 are all that trains.
  decode:   batch 1, a 16-token prompt, 128 new tokens, greedy on the mean of all heads' logits, with
            a KV cache preallocated for the whole sequence (no concatenation per token). The time is the
            128 decoding steps; the prompt's prefill is run before the clock starts.

Run it with Debian's /usr/bin/python3 (the python3 that imports torch); model_vs_torch.py starts it with
PyTorch's best settings on this machine (OpenMP OpenBLAS, tcmalloc, OMP_NUM_THREADS).
Prints one line per mode in the same RESULT format as bench_model.
"""
import argparse
import math
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from presets import DECODE_NEW, DECODE_PROMPT, LORA_RANK, LORA_TARGETS, PRESETS  # noqa: E402

EPS = 1e-6
ROPE_THETA = 500000.0


class RMSNorm(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * self.weight


class LoraLinear(torch.nn.Module):
    """A frozen Linear plus a trainable low-rank update."""

    def __init__(self, base, rank):
        super().__init__()
        self.base, self.scaling = base, 2.0  # alpha = 2 * rank
        self.A = torch.nn.Parameter(torch.empty(rank, base.in_features))
        self.B = torch.nn.Parameter(torch.zeros(base.out_features, rank))
        torch.nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))

    def forward(self, x):
        return self.base(x) + self.scaling * F.linear(F.linear(x, self.A), self.B)


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
        self.cache = None  # (k, v) of shape (1, kv heads, max positions, head dim) while decoding

    def attention(self, x, cos, sin, mask, pos):
        B, T, _ = x.shape
        q = self.q_norm(self.w_q(x)).view(B, T, self.n_heads, self.hd).transpose(1, 2)
        k = self.k_norm(self.w_k(x)).view(B, T, self.n_kv, self.hd).transpose(1, 2)
        v = self.w_v(x).view(B, T, self.n_kv, self.hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        if self.cache is not None:  # decoding: append to the cache, attend to everything so far
            self.cache[0][:, :, pos:pos + T] = k
            self.cache[1][:, :, pos:pos + T] = v
            k, v = self.cache[0][:, :, :pos + T], self.cache[1][:, :, :pos + T]
        if self.n_kv != self.n_heads:
            rep = self.n_heads // self.n_kv
            k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd))
        if mask is not None:
            scores = scores.masked_fill(mask, float("-inf"))
        y = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(B, T, -1)
        return self.w_out(y)

    def forward(self, x, cos, sin, mask, pos=0):
        h = x + self.attention_norm(self.attention(x, cos, sin, mask, pos))
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

    def rope(self, start, T):
        hd = self.c["d"] // self.c["heads"]
        inv = 1.0 / (ROPE_THETA ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        angles = torch.outer(torch.arange(start, start + T, dtype=torch.float32), inv)
        angles = torch.cat((angles, angles), dim=-1)
        return angles.cos(), angles.sin()

    def run_trunk(self, ids, cos, sin, mask, pos=0):
        x = self.embeddings(ids)
        for block in self.trunk:
            x = block(x, cos, sin, mask, pos)
        return x

    def run_head(self, k, x, cos, sin, mask, pos=0):
        for block in self.heads[k]:
            x = block(x, cos, sin, mask, pos)
        return self.w_out(self.norm(x))

    def forward(self, ids):
        T = ids.shape[1]
        cos, sin = self.rope(0, T)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        x = self.run_trunk(ids, cos, sin, mask)
        return torch.stack([self.run_head(k, x, cos, sin, mask) for k in range(len(self.heads))])

    def train_step_loss(self, ids, targets, trunk_trains):
        """Forward and backward of one step, one head at a time; returns the loss."""
        T = ids.shape[1]
        cos, sin = self.rope(0, T)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        with torch.set_grad_enabled(trunk_trains):
            x = self.run_trunk(ids, cos, sin, mask)
        h = x.detach().requires_grad_(trunk_trains)
        total = 0.0
        for k in range(len(self.heads)):
            logits = self.run_head(k, h, cos, sin, mask)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)) / len(self.heads)
            loss.backward()
            total += loss.item()
            del logits, loss
        if trunk_trains:
            x.backward(h.grad)
        return total

    def decode(self, prompt, new_tokens):
        """Greedy KV-cached decoding on the mean of the heads' logits; returns (ids, seconds of decoding)."""
        hd = self.c["d"] // self.c["heads"]
        total = prompt.shape[1] + new_tokens
        blocks = list(self.trunk) + [b for head in self.heads for b in head]
        for b in blocks:
            b.cache = (torch.empty(1, b.n_kv, total, hd), torch.empty(1, b.n_kv, total, hd))

        def step(ids, pos):
            T = ids.shape[1]
            cos, sin = self.rope(pos, T)
            mask = torch.ones(T, T, dtype=torch.bool).triu(1) if T > 1 else None
            x = self.run_trunk(ids, cos, sin, mask, pos)
            logits = sum(self.run_head(k, x, cos, sin, mask, pos)[:, -1] for k in range(len(self.heads)))
            return (logits / len(self.heads)).argmax(-1, keepdim=True)

        out = []
        nxt = step(prompt, 0)
        t0 = time.perf_counter()
        for i in range(new_tokens):
            out.append(int(nxt))
            nxt = step(nxt, prompt.shape[1] + i)
        seconds = time.perf_counter() - t0
        for b in blocks:
            b.cache = None
        return out, seconds


def add_lora(model):
    for head in model.heads:
        for block in head:
            for name in LORA_TARGETS:
                setattr(block, name, LoraLinear(getattr(block, name), LORA_RANK))
    for name, p in model.named_parameters():
        p.requires_grad_(name.endswith(".A") or name.endswith(".B"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    ap.add_argument("--mode", default="train", choices=["forward", "train", "finetune", "lora", "decode"])
    ap.add_argument("--batch", type=int, default=0, help="default: the preset's")
    ap.add_argument("--seq", type=int, default=0, help="default: the preset's")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    c = PRESETS[a.preset]
    batch, seq = a.batch or c["batch"], a.seq or c["seq"]
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = HydraTorch(c)
    tokens = torch.randint(0, c["vocab"], (batch, seq + 1), generator=torch.Generator().manual_seed(1234))
    inputs, targets = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()

    def report(times, tokens_per_iter):
        med = statistics.median(times)
        print(f"RESULT impl=torch preset={a.preset} mode={a.mode} batch={batch} seq={seq} "
              f"threads={torch.get_num_threads()} iters={len(times)} median_s={med:.6f} min_s={min(times):.6f} "
              f"max_s={max(times):.6f} tokens_per_s={tokens_per_iter / med:.1f}", flush=True)

    times = []
    if a.mode == "forward":
        for i in range(a.warmup + a.iters):
            t0 = time.perf_counter()
            with torch.inference_mode():
                logits = model(inputs)
            del logits
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
        report(times, batch * seq)
    elif a.mode == "decode":
        prompt = tokens[:1, :DECODE_PROMPT].contiguous()
        with torch.inference_mode():
            for i in range(a.warmup + a.iters):
                _, seconds = model.decode(prompt, DECODE_NEW)
                if i >= a.warmup:
                    times.append(seconds)
        report(times, DECODE_NEW)
    else:
        if a.mode == "finetune":
            for m in [model.embeddings, model.trunk]:
                m.requires_grad_(False)
        elif a.mode == "lora":
            add_lora(model)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        decay = [p for n, p in named if p.dim() == 2 and "embeddings" not in n]
        decay_ids = set(id(p) for p in decay)
        groups = [{"params": decay, "weight_decay": 0.1},
                  {"params": [p for _, p in named if id(p) not in decay_ids], "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
        params = [p for _, p in named]
        trunk_trains = a.mode == "train"
        for i in range(a.warmup + a.iters):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            model.train_step_loss(inputs, targets, trunk_trains)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
        report(times, batch * seq)


if __name__ == "__main__":
    main()
