#!/usr/bin/python3
"""Writes the PyTorch golden fixtures under tests/fixtures/.

Run by hand, with Debian's torch (python3-torch is importable only by /usr/bin/python3):

    /usr/bin/python3 scripts/make_fixtures.py            # rewrites tests/fixtures/
    /usr/bin/python3 scripts/make_fixtures.py --check    # recomputes and compares, writes nothing

This file implements the Hydra model a second time, independently of the C++ sources, in plain PyTorch
and in float64, from the equations and the contract of docs/model.md only: embeddings, OLMo-2 blocks
(h = x + attention_norm(attention(x)); out = h + feed_forward_norm(feed_forward(h))), QK-norm over the full
projection width, rotate-half RoPE, causal attention with scale 1/sqrt(head_dim), SwiGLU, RMSNorm with
weight w (not 1+w) and eps inside the root, the trunk / N heads / shared lm_head split, load_olmo_state,
forward, residual_forward, the loss and its gradients, and the head combinations. It also writes a small
HuggingFace-format OLMo-2 checkpoint (tests/fixtures/hf_olmo2_tiny/: HF names, config.json, two shards and
an index) with the logits its weights give, for hydra convert / export. Every fixture and every tensor
name is described in tests/fixtures/README.md.

Storage rule (keeps the files small without losing anything the tests need):
  * inputs the model is given (parameters, the residual) are drawn as float32 values, so they are exactly
    representable in float32 and float64, and stored as F32: the C++ float32 and float64 runs both use
    exactly the weights PyTorch used;
  * everything computed (activations, logits, losses, combinations) is float64 and stored as F64;
  * gradients are computed in float64 and stored rounded to F32 (relative error <= 6e-8, far below the
    tests' 1e-5): in F64 they alone would be 2 MB for the main fixture;
  * token ids, targets and head-index lists are I64.

The safetensors writer below is written from the format's description (the `safetensors` Python package is
not a Debian package): an 8-byte little-endian header length, a JSON header padded with spaces to a
multiple of 8 bytes, then the data. Data is laid out by (element size descending, name), as the reference
implementation does, so every tensor starts at a multiple of its element size.
"""

import argparse
import json
import math
import os
import struct
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

FORMAT_VERSION = 1
F64 = torch.float64

# ---------------------------------------------------------------------------------------------------
# safetensors and .npy files
# ---------------------------------------------------------------------------------------------------

_ST_DTYPES = {torch.float32: ("F32", "<f4"), torch.float64: ("F64", "<f8"),
              torch.int32: ("I32", "<i4"), torch.int64: ("I64", "<i8")}
_ST_NUMPY = {v[0]: v[1] for v in _ST_DTYPES.values()}


def save_safetensors(path, tensors, metadata):
    """tensors: name -> torch tensor (F32/F64/I32/I64); metadata: str -> str. Written atomically."""
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    items = []
    for name, t in tensors.items():
        dtype, npdtype = _ST_DTYPES[t.dtype]
        raw = t.detach().contiguous().numpy().astype(npdtype, copy=False).tobytes(order="C")
        items.append((name, dtype, list(t.shape), raw, np.dtype(npdtype).itemsize))
    items.sort(key=lambda it: (-it[4], it[0]))  # by element size descending, then name
    header, offset, chunks = {"__metadata__": dict(sorted(metadata.items()))}, 0, []
    for name, dtype, shape, raw, _ in items:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        chunks.append(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    _write_atomic(path, struct.pack("<Q", len(text)) + text + b"".join(chunks))


def load_safetensors(path):
    """The inverse of save_safetensors, for the script's own round-trip check."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    metadata = header.pop("__metadata__", {})
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data[8 + n + begin:8 + n + end], dtype=_ST_NUMPY[info["dtype"]])
        out[name] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out, metadata


def _write_atomic(path, data):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_npy(path, array, version=None):
    """np.save, or an explicit header version (np.save picks 1.0 whenever the header fits)."""
    with open(path, "wb") as f:
        if version is None:
            np.save(f, array, allow_pickle=False)
        else:
            np.lib.format.write_array(f, array, version=version, allow_pickle=False)


# ---------------------------------------------------------------------------------------------------
# The model, in float64, from the spec
# ---------------------------------------------------------------------------------------------------

class Config:
    def __init__(self, *, vocab_size, real_vocab_size, d_model, n_layers, n_heads, n_kv_heads,
                 hidden_size, rope_theta, norm_eps, hydra_heads, trunk_layers, batch, seq):
        self.vocab_size = vocab_size            # V: padded rows of the embedding and lm_head
        self.real_vocab_size = real_vocab_size  # rows of the OLMo state before load_olmo_state pads
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads                  # attention heads
        self.n_kv_heads = n_kv_heads
        self.head_dim = d_model // n_heads
        self.hidden_size = hidden_size
        self.rope_theta = rope_theta
        self.norm_eps = norm_eps
        self.hydra_heads = hydra_heads          # N
        self.trunk_layers = trunk_layers
        self.head_layers = n_layers - trunk_layers
        self.batch = batch
        self.seq = seq
        assert self.head_dim * n_heads == d_model and n_heads % n_kv_heads == 0 and self.head_dim % 2 == 0

    def to_json(self):
        """The HydraTransformerConfig as config.json holds it (docs/formats.md, 'config.json')."""
        return {
            "base_config": {
                "vocab_size": self.vocab_size, "d_model": self.d_model, "n_layers": self.n_layers,
                "n_heads": self.n_heads, "n_kv_heads": self.n_kv_heads, "head_dim": self.head_dim,
                "hidden_size": self.hidden_size, "rope_theta": self.rope_theta,
                "norm_eps": self.norm_eps, "qk_norm": True,
            },
            "n_heads": self.hydra_heads,
            "trunk_layers": self.trunk_layers,
            "head_layers": self.head_layers,
        }


def rms_norm(x, w, eps):
    # y = x * rsqrt(mean(x^2) + eps) * w: the weight is w (not 1 + w), eps is inside the root.
    return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * w


def linear(x, w):
    # w is [out, in] (PyTorch's layout), no bias: y = x w^T.
    return x @ w.t()


def rope(x, theta, start=0):
    # x: (B, T, H, D). Rotate-half ("NeoX") RoPE: inv_freq[i] = theta^(-2i/D), emb = cat(freqs, freqs),
    # out = x cos + rotate_half(x) sin with rotate_half([x1, x2]) = [-x2, x1]. Positions start at `start`.
    _, T, _, D = x.shape
    inv_freq = 1.0 / theta ** (torch.arange(0, D, 2, dtype=F64) / D)
    pos = torch.arange(start, start + T, dtype=F64)
    freqs = pos[:, None] * inv_freq[None, :]          # (T, D/2)
    emb = torch.cat([freqs, freqs], dim=-1)           # (T, D)
    cos = emb.cos()[None, :, None, :]
    sin = emb.sin()[None, :, None, :]
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return (x * cos + torch.cat([-x2, x1], dim=-1) * sin).to(x.dtype)  # float32 only in self_check


def attention(x, p, prefix, cfg):
    B, T, _ = x.shape
    H, Hkv, D = cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    # QK-norm over the full projection width, before splitting into heads.
    q = rms_norm(linear(x, p[prefix + "w_q.weight"]), p[prefix + "q_norm.weight"], cfg.norm_eps)
    k = rms_norm(linear(x, p[prefix + "w_k.weight"]), p[prefix + "k_norm.weight"], cfg.norm_eps)
    v = linear(x, p[prefix + "w_v.weight"])
    q = rope(q.view(B, T, H, D), cfg.rope_theta)
    k = rope(k.view(B, T, Hkv, D), cfg.rope_theta)
    v = v.view(B, T, Hkv, D)
    # GQA: query head h reads key/value head h // (H / Hkv) (flash-attn's and HF repeat_kv's grouping).
    k = k.repeat_interleave(H // Hkv, dim=2)
    v = v.repeat_interleave(H // Hkv, dim=2)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    causal = torch.ones(T, T, dtype=torch.bool).triu(1)
    scores = scores.masked_fill(causal, float("-inf"))
    y = scores.softmax(dim=-1) @ v                    # (B, H, T, D)
    y = y.transpose(1, 2).reshape(B, T, H * D)
    return linear(y, p[prefix + "w_out.weight"])


def feed_forward(x, p, prefix):
    # SwiGLU: w2(silu(w1 x) * w3 x).
    return linear(F.silu(linear(x, p[prefix + "w1.weight"])) * linear(x, p[prefix + "w3.weight"]),
                  p[prefix + "w2.weight"])


def block(x, p, prefix, cfg):
    # OLMo-2 reordered norm: the norms apply to the sublayer outputs; no norm on the block input.
    h = x + rms_norm(attention(x, p, prefix + "attention.", cfg), p[prefix + "attention_norm.weight"],
                     cfg.norm_eps)
    return h + rms_norm(feed_forward(h, p, prefix + "feed_forward."), p[prefix + "feed_forward_norm.weight"],
                        cfg.norm_eps)


def lm_head(h, p, cfg):
    return linear(rms_norm(h, p["lm_head.norm.weight"], cfg.norm_eps), p["lm_head.w_out.weight"])


def forward_trunk(p, ids, cfg, acts=None):
    x = p["trunk.embeddings.weight"][ids]
    if acts is not None:
        acts["act.trunk.embeddings"] = x
    for i in range(cfg.trunk_layers):
        x = block(x, p, f"trunk.blocks.{i}.", cfg)
        if acts is not None:
            acts[f"act.trunk.blocks.{i}"] = x
    return x


def run_head(p, k, h, cfg, acts=None):
    for j in range(cfg.head_layers):
        h = block(h, p, f"heads.{k}.blocks.{j}.", cfg)
        if acts is not None:
            acts[f"act.heads.{k}.blocks.{j}"] = h
    return h


def selected_heads(head_indices, cfg):
    if head_indices is None:
        return list(range(cfg.hydra_heads))
    assert len(head_indices) > 0 and all(0 <= k < cfg.hydra_heads for k in head_indices)
    return list(head_indices)


def forward_heads(p, hidden, cfg, head_indices=None, residual=None, last_token_only=False, acts=None):
    if residual is not None:
        assert residual.shape == hidden.shape
        hidden = hidden + residual  # added once, out of place; every selected head gets the sum
    logits = []
    for k in selected_heads(head_indices, cfg):
        h = run_head(p, k, hidden, cfg, acts)
        if last_token_only:
            h = h[:, -1:, :]
        logits.append(lm_head(h, p, cfg))
    return torch.stack(logits)  # (n_selected, B, T_out, V)


def forward(p, ids, cfg, residual=None, head_indices=None, last_token_only=False, acts=None):
    return forward_heads(p, forward_trunk(p, ids, cfg, acts), cfg, head_indices, residual, last_token_only,
                         acts)


def residual_forward(p, ids, cfg, hidden_head_indices, head_indices=None, last_token_only=False):
    trunk = forward_trunk(p, ids, cfg)
    selected = selected_heads(head_indices, cfg)
    assert all(k in selected for k in hidden_head_indices)
    logits, head_hidden = [], {}
    for k in selected:
        h = run_head(p, k, trunk, cfg)
        if last_token_only:
            h = h[:, -1:, :]
        head_hidden[k] = h  # the last block's output, before the lm_head's norm
        logits.append(lm_head(h, p, cfg))
    return torch.stack(logits), torch.stack([head_hidden[k] for k in hidden_head_indices])


def hydra_loss(logits, targets):
    # Mean over heads of each head's mean cross-entropy over the positions whose target is not -100.
    V = logits.shape[-1]
    per_head = torch.stack([F.cross_entropy(l.reshape(-1, V), targets.reshape(-1), ignore_index=-100)
                            for l in logits])
    return per_head.mean(), per_head


def poe_log_probs(logits, beta, temperature):
    # Product of experts: log_softmax over V of sum_k beta_k * log_softmax(logits_k / T).
    # logits (N, B, T, V), beta (N,) -> (B, T, V). Padded vocab columns (logit 0) take part like any other.
    mixed = (beta[:, None, None, None] * F.log_softmax(logits / temperature, dim=-1)).sum(dim=0)
    return F.log_softmax(mixed, dim=-1)


# ---------------------------------------------------------------------------------------------------
# Weights: an OLMo-core state, then load_olmo_state
# ---------------------------------------------------------------------------------------------------

def block_shapes(cfg):
    C, F_, H, Hkv, D = cfg.d_model, cfg.hidden_size, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    return {
        "attention.w_q.weight": (H * D, C), "attention.w_k.weight": (Hkv * D, C),
        "attention.w_v.weight": (Hkv * D, C), "attention.w_out.weight": (C, H * D),
        "attention.q_norm.weight": (H * D,), "attention.k_norm.weight": (Hkv * D,),
        "attention_norm.weight": (C,),
        "feed_forward.w1.weight": (F_, C), "feed_forward.w3.weight": (F_, C), "feed_forward.w2.weight": (C, F_),
        "feed_forward_norm.weight": (C,),
    }


def random_olmo_state(cfg, gen):
    """A flat OLMo-core state dict with real_vocab_size rows, float32 values held in float64 tensors.

    Matrices ~ N(0, 1/fan_in) so activations stay O(1) and attention is far from uniform; norm weights
    ~ 1 + 0.2 N(0, 1) (not ones, so a w vs 1 + w bug shows); embeddings ~ N(0, 0.02^2) like OLMo's init,
    which makes the first block's q/k RMS small enough (~4e-4) that the eps placement shows in float32.
    """
    def draw(shape, std, mean=0.0):
        return (torch.randn(shape, generator=gen, dtype=torch.float32) * std + mean).to(F64)

    state = {"embeddings.weight": draw((cfg.real_vocab_size, cfg.d_model), 0.02)}
    for i in range(cfg.n_layers):
        for suffix, shape in block_shapes(cfg).items():
            if len(shape) == 1:
                state[f"blocks.{i}.{suffix}"] = draw(shape, 0.2, 1.0)
            else:
                state[f"blocks.{i}.{suffix}"] = draw(shape, 1.0 / math.sqrt(shape[1]))
    state["lm_head.norm.weight"] = draw((cfg.d_model,), 0.2, 1.0)
    state["lm_head.w_out.weight"] = draw((cfg.real_vocab_size, cfg.d_model), 1.0 / math.sqrt(cfg.d_model))
    return state


def load_olmo_state(olmo, cfg):
    """docs/model.md, 'load_olmo_state': blocks.i (i < trunk) -> trunk.blocks.i, others -> heads.k.blocks.(i - trunk) for every
    head k (a copy each), lm_head.* -> lm_head.*, the rest -> trunk.*; vocab rows zero-padded."""
    hydra = {}
    for name, t in olmo.items():
        if name in ("embeddings.weight", "lm_head.w_out.weight"):
            assert t.shape[0] <= cfg.vocab_size
            t = torch.cat([t, torch.zeros(cfg.vocab_size - t.shape[0], t.shape[1], dtype=t.dtype)])
        if name.startswith("blocks."):
            i, suffix = name[len("blocks."):].split(".", 1)
            i = int(i)
            if i < cfg.trunk_layers:
                hydra[f"trunk.blocks.{i}.{suffix}"] = t.clone()
            else:
                for k in range(cfg.hydra_heads):
                    hydra[f"heads.{k}.blocks.{i - cfg.trunk_layers}.{suffix}"] = t.clone()
        elif name.startswith("lm_head."):
            hydra[name] = t.clone()
        else:
            hydra["trunk." + name] = t.clone()
    return hydra


def perturb_heads(hydra, cfg, gen):
    """Each head's weights get their own small float32 perturbation, so the heads differ."""
    out = dict(hydra)
    for name in sorted(hydra):
        if name.startswith("heads."):
            t = hydra[name].to(torch.float32)
            std = 0.05 if t.dim() == 1 else 0.1 / math.sqrt(t.shape[1])
            out[name] = (t + std * torch.randn(t.shape, generator=gen, dtype=torch.float32)).to(F64)
    return out


def expected_param_names(cfg):
    names = ["trunk.embeddings.weight", "lm_head.norm.weight", "lm_head.w_out.weight"]
    for i in range(cfg.trunk_layers):
        names += [f"trunk.blocks.{i}.{s}" for s in block_shapes(cfg)]
    for k in range(cfg.hydra_heads):
        for j in range(cfg.head_layers):
            names += [f"heads.{k}.blocks.{j}.{s}" for s in block_shapes(cfg)]
    return sorted(names)


# ---------------------------------------------------------------------------------------------------
# Self-checks of the reference itself (cheap properties an independent implementation must have)
# ---------------------------------------------------------------------------------------------------

def self_check(p, cfg, ids, gen):
    # RoPE: a rotation (norms kept) whose dot products depend only on the position difference.
    q = torch.randn(1, 1, 1, cfg.head_dim, generator=gen, dtype=F64)
    k = torch.randn(1, 1, 1, cfg.head_dim, generator=gen, dtype=F64)
    dots = [(rope(q, cfg.rope_theta, m) * rope(k, cfg.rope_theta, m - 3)).sum().item() for m in (3, 5, 11)]
    assert max(dots) - min(dots) < 1e-12, dots
    assert abs(rope(q, cfg.rope_theta, 7).norm() - q.norm()) < 1e-12
    # Causality: changing the last token changes no earlier position.
    ids2 = ids.clone()
    ids2[:, -1] = (ids2[:, -1] + 1) % cfg.real_vocab_size
    a, b = forward(p, ids, cfg), forward(p, ids2, cfg)
    assert torch.equal(a[:, :, :-1], b[:, :, :-1]) and not torch.equal(a[:, :, -1], b[:, :, -1])
    # Padded vocab rows of lm_head are zero, so those logits are exactly 0.
    assert torch.all(a[..., cfg.real_vocab_size:] == 0)
    # The same model in float32 agrees with float64 to float32 accuracy.
    p32 = {n: t.to(torch.float32) for n, t in p.items()}
    a32 = forward(p32, ids, cfg).to(F64)
    rel = ((a32 - a).abs().max() / a.abs().max()).item()
    assert rel < 1e-5, rel
    # Our cross-entropy is the textbook one.
    logits = a[0].reshape(-1, cfg.vocab_size)
    t = torch.randint(0, cfg.real_vocab_size, (logits.shape[0],), generator=gen)
    manual = (torch.logsumexp(logits, -1) - logits.gather(1, t[:, None])[:, 0]).mean()
    assert abs(manual - F.cross_entropy(logits, t)) < 1e-12


# ---------------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------------

POE_BETA = [0.5, 0.3, 0.2]  # for 3 heads; [0.6, 0.4] for 2
POE_TEMPERATURE = 1.5


def make_inputs(cfg, gen):
    ids = torch.randint(0, cfg.real_vocab_size, (cfg.batch, cfg.seq), generator=gen, dtype=torch.int64)
    ids[0, 0] = 0                         # the first and the last real ids
    ids[1, 1] = cfg.real_vocab_size - 1
    ids[1, 4] = ids[0, 2]                 # a repeated id (embedding backward accumulates)
    targets = torch.randint(0, cfg.real_vocab_size, (cfg.batch, cfg.seq), generator=gen, dtype=torch.int64)
    targets[1, 3] = -100                  # ignored
    residual = (torch.randn(cfg.batch, cfg.seq, cfg.d_model, generator=gen, dtype=torch.float32) * 0.5).to(F64)
    return ids, targets, residual


def metadata(name, cfg, description, extra=None):
    meta = {
        "format": "hydra-fixture",
        "format_version": str(FORMAT_VERSION),
        "fixture": name,
        "description": description,
        "config": json.dumps(cfg.to_json(), sort_keys=True),
        "real_vocab_size": str(cfg.real_vocab_size),
        "generator": "scripts/make_fixtures.py",
        "torch_version": torch.__version__,
    }
    meta.update(extra or {})
    return meta


def full_fixture(name, cfg, params, ids, targets, residual, description):
    """Every Hydra parameter, every call of the Hydra contract (docs/model.md), the loss and every gradient."""
    out = {}
    for n, t in params.items():
        out[n] = t.to(torch.float32)
    out["input_ids"] = ids
    out["targets"] = targets
    out["residual"] = residual.to(torch.float32)
    N = cfg.hydra_heads

    with torch.no_grad():
        acts = {}
        logits = forward(params, ids, cfg, acts=acts)
        out.update(acts)
        out["forward.logits"] = logits

        subset = [2, 0, 2] if N >= 3 else [1, 0, 1]
        out["forward_subset.head_indices"] = torch.tensor(subset, dtype=torch.int64)
        out["forward_subset.logits"] = forward(params, ids, cfg, head_indices=subset)
        assert torch.equal(out["forward_subset.logits"], logits[subset])

        out["forward_last.logits"] = forward(params, ids, cfg, last_token_only=True)
        assert torch.equal(out["forward_last.logits"], logits[:, :, -1:])

        out["forward_residual.logits"] = forward(params, ids, cfg, residual=residual)

        hidden_idx, head_idx = ([2, 0], [0, 2]) if N >= 3 else ([1, 0], [0, 1])
        out["residual_forward.hidden_head_indices"] = torch.tensor(hidden_idx, dtype=torch.int64)
        out["residual_forward.head_indices"] = torch.tensor(head_idx, dtype=torch.int64)
        rl, rh = residual_forward(params, ids, cfg, hidden_idx, head_idx)
        out["residual_forward.logits"], out["residual_forward.hidden"] = rl, rh
        assert torch.equal(rl, logits[head_idx])
        assert torch.equal(rh[0], acts[f"act.heads.{hidden_idx[0]}.blocks.{cfg.head_layers - 1}"])
        rl, rh = residual_forward(params, ids, cfg, hidden_idx, head_idx, last_token_only=True)
        out["residual_forward_last.logits"], out["residual_forward_last.hidden"] = rl, rh

        beta = torch.tensor(POE_BETA if N == 3 else [0.6, 0.4], dtype=F64)
        out["combine.mean_logits"] = logits.mean(dim=0)
        out["combine.poe_beta"] = beta
        out["combine.poe_temperature"] = torch.tensor(POE_TEMPERATURE, dtype=F64)
        out["combine.poe_log_probs"] = poe_log_probs(logits, beta, POE_TEMPERATURE)

    leaves = {n: t.clone().requires_grad_(True) for n, t in params.items()}
    loss, per_head = hydra_loss(forward(leaves, ids, cfg), targets)
    loss.backward()
    out["loss"] = loss.detach()
    out["loss.per_head"] = per_head.detach()
    for n, t in leaves.items():
        out["grad." + n] = t.grad.to(torch.float32)
    # Padded embedding rows are never looked up, so their gradient is exactly zero.
    assert torch.all(leaves["trunk.embeddings.weight"].grad[cfg.real_vocab_size:] == 0)

    meta = metadata(name, cfg, description,
                    {"poe": json.dumps({"beta": beta.tolist(), "temperature": POE_TEMPERATURE})})
    return out, meta


def olmo_fixture(name, cfg, olmo, ids, targets, description):
    """The OLMo state (unpadded, OLMo-core names under `olmo.`) and what the loaded Hydra must compute."""
    params = load_olmo_state(olmo, cfg)
    out = {"olmo." + n: t.to(torch.float32) for n, t in olmo.items()}
    out["input_ids"] = ids
    out["targets"] = targets
    with torch.no_grad():
        acts = {}
        logits = forward(params, ids, cfg, acts=acts)
        out.update(acts)
        out["forward.logits"] = logits
        for k in range(1, cfg.hydra_heads):
            assert torch.equal(logits[k], logits[0])  # loaded heads are identical
        loss, per_head = hydra_loss(logits, targets)
        out["loss"], out["loss.per_head"] = loss, per_head
    return out, metadata(name, cfg, description)


def npy_fixtures():
    """Small files written by NumPy itself, for tests/test_io_npy.cpp (values: see README)."""
    six = np.arange(6).reshape(2, 3)
    return {
        "f32_2x3.npy": (six * 0.5 - 1).astype("<f4"),
        "f64_scalar.npy": np.array(-2.25, dtype="<f8"),
        "i32_0x3.npy": np.zeros((0, 3), dtype="<i4"),
        "i64_5.npy": (np.arange(5, dtype="<i8") - 2) * 1000000000000,
        "f64_3x1x2_v2.npy": ((np.arange(6).reshape(3, 1, 2) + 1) / 8).astype("<f8"),  # version 2.0 header
        "bad_fortran.npy": np.asfortranarray(six.astype("<f4")),
        "bad_big_endian.npy": six.astype(">f4"),
        "bad_uint8.npy": six.astype("u1"),
    }


def known_values(fixtures):
    """A few values per file, for the io tests to check the reader against (exact: repr round-trips)."""
    def pick(t, idx):
        return [t.reshape(-1)[i].item() for i in idx]
    tensors, _ = fixtures["hydra_tiny_distinct.safetensors"]
    return {
        "hydra_tiny_distinct.safetensors": {
            "input_ids": {"dtype": "I64", "shape": list(tensors["input_ids"].shape),
                          "values": tensors["input_ids"].reshape(-1).tolist()},
            "trunk.embeddings.weight": {"dtype": "F32", "shape": list(tensors["trunk.embeddings.weight"].shape),
                                        "flat_index": [0, 1, 47, 48, 14399, 14400, 15359],
                                        "values": pick(tensors["trunk.embeddings.weight"],
                                                       [0, 1, 47, 48, 14399, 14400, 15359])},
            "forward.logits": {"dtype": "F64", "shape": list(tensors["forward.logits"].shape),
                               "flat_index": [0, 1, 299, 300, 13439],
                               "values": pick(tensors["forward.logits"], [0, 1, 299, 300, 13439])},
            "loss": {"dtype": "F64", "shape": [], "values": [tensors["loss"].item()]},
            "tensor_count": len(tensors),
        }
    }


def build_all():
    fixtures = {}

    # The main configuration (odd sizes on purpose).
    cfg = Config(vocab_size=320, real_vocab_size=300, d_model=48, n_layers=4, n_heads=3, n_kv_heads=3,
                 hidden_size=136, rope_theta=10000.0, norm_eps=1e-6, hydra_heads=3, trunk_layers=2,
                 batch=2, seq=7)
    gen = torch.Generator().manual_seed(20240531)
    olmo = random_olmo_state(cfg, gen)
    ids, targets, residual = make_inputs(cfg, gen)
    identical = load_olmo_state(olmo, cfg)
    assert sorted(identical) == expected_param_names(cfg)
    distinct = perturb_heads(identical, cfg, gen)
    self_check(distinct, cfg, ids, gen)
    fixtures["hydra_tiny.safetensors"] = olmo_fixture(
        "hydra_tiny", cfg, olmo, ids, targets,
        "OLMo-core state (vocab 300 rows) to load with load_olmo_state into the tiny Hydra (heads identical), "
        "with the activations, logits and loss the loaded model must give")
    fixtures["hydra_tiny_distinct.safetensors"] = full_fixture(
        "hydra_tiny_distinct", cfg, distinct, ids, targets, residual,
        "the tiny Hydra of hydra_tiny with every head's weights perturbed differently: all calls, loss, "
        "gradients")

    # GQA (2 key/value heads shared by 4 query heads, so the grouping shows), other odd sizes, another
    # eps and theta, batch 3, seq 5, 2 heads.
    gcfg = Config(vocab_size=64, real_vocab_size=50, d_model=32, n_layers=3, n_heads=4, n_kv_heads=2,
                  hidden_size=24, rope_theta=500000.0, norm_eps=1e-5, hydra_heads=2, trunk_layers=1,
                  batch=3, seq=5)
    gen = torch.Generator().manual_seed(7)
    golmo = random_olmo_state(gcfg, gen)
    gids, gtargets, gresidual = make_inputs(gcfg, gen)
    gparams = perturb_heads(load_olmo_state(golmo, gcfg), gcfg, gen)
    self_check(gparams, gcfg, gids, gen)
    fixtures["hydra_gqa.safetensors"] = full_fixture(
        "hydra_gqa", gcfg, gparams, gids, gtargets, gresidual,
        "a GQA Hydra (4 query heads, 2 key/value heads), distinct heads: all calls, loss, gradients")
    return fixtures


# ---------------------------------------------------------------------------------------------------
# A HuggingFace OLMo-2 checkpoint (Olmo2ForCausalLM names and config.json), for hydra convert / export
# ---------------------------------------------------------------------------------------------------

# HF name -> OLMo-core name (docs/model.md, 'HuggingFace <-> OLMo-core names'; written here independently of
# the C++).
HF_BLOCK_NAMES = {
    "self_attn.q_proj.weight": "attention.w_q.weight", "self_attn.k_proj.weight": "attention.w_k.weight",
    "self_attn.v_proj.weight": "attention.w_v.weight", "self_attn.o_proj.weight": "attention.w_out.weight",
    "self_attn.q_norm.weight": "attention.q_norm.weight", "self_attn.k_norm.weight": "attention.k_norm.weight",
    "post_attention_layernorm.weight": "attention_norm.weight",
    "mlp.gate_proj.weight": "feed_forward.w1.weight", "mlp.up_proj.weight": "feed_forward.w3.weight",
    "mlp.down_proj.weight": "feed_forward.w2.weight",
    "post_feedforward_layernorm.weight": "feed_forward_norm.weight",
}
HF_TOP_NAMES = {"model.embed_tokens.weight": "embeddings.weight", "model.norm.weight": "lm_head.norm.weight",
                "lm_head.weight": "lm_head.w_out.weight"}
HF_DIR = "hf_olmo2_tiny"
HF_EXPECTED = "hf_olmo2_tiny_expected.safetensors"


def hf_name(olmo_name):
    for hf, olmo in HF_TOP_NAMES.items():
        if olmo_name == olmo:
            return hf
    i, suffix = olmo_name[len("blocks."):].split(".", 1)
    return f"model.layers.{int(i)}.{[h for h, o in HF_BLOCK_NAMES.items() if o == suffix][0]}"


def hf_config_json(cfg, max_position_embeddings):
    """config.json as transformers writes it for Olmo2ForCausalLM (keys sorted, indent 2)."""
    return {
        "architectures": ["Olmo2ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": None, "eos_token_id": cfg.real_vocab_size - 1, "hidden_act": "silu",
        "hidden_size": cfg.d_model, "initializer_range": 0.02, "intermediate_size": cfg.hidden_size,
        "max_position_embeddings": max_position_embeddings, "model_type": "olmo2",
        "num_attention_heads": cfg.n_heads, "num_hidden_layers": cfg.n_layers,
        "num_key_value_heads": cfg.n_kv_heads, "pad_token_id": cfg.real_vocab_size - 2,
        "rms_norm_eps": cfg.norm_eps, "rope_scaling": None, "rope_theta": cfg.rope_theta,
        "tie_word_embeddings": False, "torch_dtype": "float32", "use_cache": True,
        "vocab_size": cfg.real_vocab_size,
    }


def hf_fixture():
    """An HF OLMo-2 directory (2 shards + index) and the logits PyTorch computes from its HF-named weights.

    Returns (files: relative path -> bytes, expected: tensors, expected metadata). GQA (4 query heads, 2 kv
    heads) so num_key_value_heads is exercised; vocab 300 unpadded (hydra convert pads it).
    """
    cfg = Config(vocab_size=300, real_vocab_size=300, d_model=48, n_layers=4, n_heads=4, n_kv_heads=2,
                 hidden_size=128, rope_theta=500000.0, norm_eps=1e-6, hydra_heads=1, trunk_layers=4,
                 batch=2, seq=6)
    gen = torch.Generator().manual_seed(4242)
    olmo = random_olmo_state(cfg, gen)
    hf = {hf_name(n): t.to(torch.float32) for n, t in olmo.items()}
    assert len(hf) == len(olmo)
    ids = torch.randint(0, cfg.real_vocab_size, (cfg.batch, cfg.seq), generator=gen, dtype=torch.int64)
    ids[0, 0], ids[1, 2] = 0, cfg.real_vocab_size - 1

    # The forward pass from the HF names: rename back (the table above) and run the OLMo-2 blocks.
    p = {}
    for name, t in hf.items():
        if name in HF_TOP_NAMES:
            p[HF_TOP_NAMES[name]] = t.to(F64)
        else:
            _, _, i, rest = name.split(".", 3)
            p[f"blocks.{i}.{HF_BLOCK_NAMES[rest]}"] = t.to(F64)
    with torch.no_grad():
        x = p["embeddings.weight"][ids]
        for i in range(cfg.n_layers):
            x = block(x, p, f"blocks.{i}.", cfg)
        logits = lm_head(x, p, cfg)  # (B, T, 300)

    # Two shards, split in name order, as save_pretrained's max_shard_size would.
    names = sorted(hf)
    half = len(names) // 2
    shard_names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    files, weight_map, total = {}, {}, 0
    for k, part in enumerate([names[:half], names[half:]]):
        files[shard_names[k]] = {n: hf[n] for n in part}
        for n in part:
            weight_map[n] = shard_names[k]
            total += hf[n].numel() * 4
    files["model.safetensors.index.json"] = {"metadata": {"total_size": total}, "weight_map": weight_map}
    files["config.json"] = hf_config_json(cfg, 64)
    expected = {"input_ids": ids, "logits": logits}
    meta = metadata("hf_olmo2_tiny_expected", cfg,
                    "logits of the HF checkpoint hf_olmo2_tiny/ (Olmo2ForCausalLM names) for input_ids, "
                    "from the PyTorch reference in float64; vocab 300 (unpadded)")
    return files, expected, meta


def write_hf_fixture(out_dir):
    files, expected, meta = hf_fixture()
    hf_dir = os.path.join(out_dir, HF_DIR)
    os.makedirs(hf_dir, exist_ok=True)
    for fname, content in files.items():
        path = os.path.join(hf_dir, fname)
        if fname.endswith(".json"):
            _write_atomic(path, (json.dumps(content, indent=2, sort_keys=True) + "\n").encode())
        else:
            save_safetensors(path, content, {"format": "pt"})
    save_safetensors(os.path.join(out_dir, HF_EXPECTED), expected, meta)
    print(f"{HF_DIR}/: {len(files)} files; {HF_EXPECTED}: logits {tuple(expected['logits'].shape)}")


def check_hf_fixture(out_dir):
    files, expected, _ = hf_fixture()
    ok = True
    for fname, content in files.items():
        path = os.path.join(out_dir, HF_DIR, fname)
        if fname.endswith(".json"):
            with open(path) as f:
                same = json.load(f) == content
        else:
            disk, _ = load_safetensors(path)
            same = sorted(disk) == sorted(content) and all(torch.equal(disk[n], content[n]) for n in content)
        if not same:
            print(f"{HF_DIR}/{fname} differs", file=sys.stderr)
            ok = False
    disk, _ = load_safetensors(os.path.join(out_dir, HF_EXPECTED))
    for n, t in expected.items():
        if n not in disk or not torch.allclose(disk[n].to(t.dtype), t, rtol=1e-12, atol=1e-12):
            print(f"{HF_EXPECTED}: {n} differs", file=sys.stderr)
            ok = False
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                                  "fixtures"))
    ap.add_argument("--check", action="store_true", help="compare with the files on disk, write nothing")
    args = ap.parse_args()
    torch.set_num_threads(1)  # reproducible reductions

    fixtures = build_all()
    out_dir = os.path.abspath(args.out)
    if args.check:
        ok = True
        for fname, (tensors, _) in fixtures.items():
            disk, _ = load_safetensors(os.path.join(out_dir, fname))
            for n, t in tensors.items():
                d = disk.get(n)
                same = d is not None and d.dtype == t.dtype and d.shape == t.shape and torch.allclose(
                    d.to(F64) if d.is_floating_point() else d, t.to(F64) if t.is_floating_point() else t,
                    rtol=1e-12, atol=1e-12)
                if not same:
                    print(f"{fname}: {n} differs", file=sys.stderr)
                    ok = False
        ok = check_hf_fixture(out_dir) and ok
        print("fixtures match" if ok else "fixtures DIFFER")
        return 0 if ok else 1

    os.makedirs(os.path.join(out_dir, "npy"), exist_ok=True)
    total = 0
    for fname, (tensors, meta) in fixtures.items():
        path = os.path.join(out_dir, fname)
        save_safetensors(path, tensors, meta)
        back, back_meta = load_safetensors(path)
        assert back_meta == meta and sorted(back) == sorted(tensors)
        assert all(torch.equal(back[n], tensors[n].to(back[n].dtype)) for n in tensors)
        size = os.path.getsize(path)
        total += size
        print(f"{fname}: {len(tensors)} tensors, {size} bytes, loss {tensors['loss'].item():.17g}")
    for fname, arr in npy_fixtures().items():
        path = os.path.join(out_dir, "npy", fname)
        save_npy(path, arr, version=(2, 0) if "_v2" in fname else None)
        total += os.path.getsize(path)
    write_hf_fixture(out_dir)
    with open(os.path.join(out_dir, "known_values.json"), "w") as f:
        json.dump(known_values(fixtures), f, indent=1)
        f.write("\n")
    print(f"total {total} bytes in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
