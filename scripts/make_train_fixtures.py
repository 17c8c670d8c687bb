#!/usr/bin/python3
"""Writes the PyTorch training fixtures tests/fixtures/train_*.safetensors.

Run by hand, with Debian's torch (python3-torch is importable only by /usr/bin/python3):

    /usr/bin/python3 scripts/make_train_fixtures.py            # rewrites the files
    /usr/bin/python3 scripts/make_train_fixtures.py --check    # recomputes and compares, writes nothing

Each fixture is a short training run of a small Hydra (3 heads that differ, GQA attention), computed in
float64 with PyTorch's own optimizers (torch.optim.AdamW / SGD), torch.nn.utils.clip_grad_norm_ and
F.cross_entropy(ignore_index=-100). The model itself is make_fixtures.py's independent implementation.
What `hydra train` must reproduce, and how the run is defined (the same definitions as the trainer's):

  * step s counts from 1; lr(s) = peak * s / W during warm-up, then cosine / linear decay to
    min_lr_ratio * peak at s = S, or constant;
  * a step reads K micro-batches of B sequences; in the sequential order, sequence b of micro-batch m
    (counted over the whole run) is the window of T + 1 ids starting at ((m * B) + b) * T, taken modulo
    the number of such windows; inputs are its first T ids, targets its last T;
  * head k's loss over a step is the sum of its counted tokens' cross-entropies over all K micro-batches
    divided by their total count; the step's loss is the mean over the trained heads; the gradient is
    that loss's;
  * the gradient norm is taken over the trainable parameters before clipping;
  * weight decay applies to 2-D weight matrices except the embedding.

Files (tensor names in tests/fixtures/README.md):
  train_base.safetensors          the model every run starts from (F32) and the token stream (I64)
  train_<run>.safetensors         per run: lr, loss, per-head loss and grad norm per step (F64), the
                                  final value of every trainable parameter (F32, "final.<name>"), and
                                  for the LoRA run the adapters' initial values ("init.<name>"); the run's
                                  options are in the metadata as JSON ("options"), and how far PyTorch's
                                  own float32 run of the same steps lands from this float64 one
                                  ("torch_float32_error": worst relative loss and grad norm difference,
                                  worst absolute weight difference).
"""

import argparse
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402  (the model, the config and the safetensors writer)

F64 = torch.float64
IGNORE = -100

# A small Hydra: trunk 1 block, 3 heads of 1 block, GQA (4 query heads, 2 key/value heads), vocab 64.
CFG = mf.Config(vocab_size=64, real_vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2,
                hidden_size=40, rope_theta=10000.0, norm_eps=1e-6, hydra_heads=3, trunk_layers=1,
                batch=2, seq=8)

# SFT pairs: digits, '+', '=' and ' ' only, whose ids in tests/fixtures/tokenizer/tiny.tokenizer.json
# are their byte values (all below 64), so the ids here need no tokenizer.
SFT_ROWS = [("12+7=", "19"), ("3+4=", "7"), ("40+2=", "42"), ("9+9=", "18"), ("1+1=", "2"),
            ("25+30=", "55"), ("8+0=", "8"), ("60+3=", "63"), ("5+5=", "10")]


def token_stream(gen, n):
    """n ids with structure to learn: a noisy walk, id_{t+1} = id_t + 1 + noise (mod 64)."""
    ids = [int(torch.randint(0, 64, (1,), generator=gen))]
    for _ in range(n - 1):
        step = 1 if float(torch.rand(1, generator=gen)) < 0.8 else int(torch.randint(0, 64, (1,), generator=gen))
        ids.append((ids[-1] + step) % 64)
    return torch.tensor(ids, dtype=torch.int64)


def lr_at(o, s):
    peak, W, S = o["lr"], o["warmup"], o["steps"]
    low = o["min_lr_ratio"] * peak
    if s <= W:
        return peak * s / W
    if o["schedule"] == "constant":
        return peak
    if s >= S:
        return low
    progress = (s - W) / (S - W)
    if o["schedule"] == "cosine":
        return low + (peak - low) * 0.5 * (1 + math.cos(math.pi * progress))
    return peak - (peak - low) * progress


def window_batches(tokens, o, micro):
    """Inputs and targets (B, T) of micro-batch `micro` (counted over the run), sequential order."""
    B, T = o["batch"], o["seq"]
    n_windows = (len(tokens) - T - 1) // T + 1
    rows = [((micro * B) + b) % n_windows for b in range(B)]
    win = torch.stack([tokens[r * T: r * T + T + 1] for r in rows])
    return win[:, :T], win[:, 1:]


def sft_batches(o, micro):
    """Right-padded rows (pad input 0, target ignored), loss on the answer only."""
    B = o["batch"]
    rows = []
    for b in range(B):
        prompt, answer = SFT_ROWS[((micro * B) + b) % len(SFT_ROWS)]
        ids = list(prompt.encode()) + list(answer.encode())
        rows.append((ids, len(prompt.encode())))
    T = max(len(ids) - 1 for ids, _ in rows)
    inputs = torch.zeros(B, T, dtype=torch.int64)
    targets = torch.full((B, T), IGNORE, dtype=torch.int64)
    for b, (ids, prompt_len) in enumerate(rows):
        for t in range(len(ids) - 1):
            inputs[b, t] = ids[t]
            if t + 1 >= prompt_len:
                targets[b, t] = ids[t + 1]
    return inputs, targets


def lora_targets(o):
    """Full names of the adapted weights: w1, w2, w3 of the feed-forward of the listed heads."""
    return [f"heads.{k}.blocks.{j}.feed_forward.{w}.weight" for k in o["lora_heads"]
            for j in range(CFG.head_layers) for w in ("w1", "w2", "w3")]


def run(base, tokens, o, gen, dtype=F64):
    """One training run in `dtype` (the base's); returns the fixture's tensors."""
    params = {n: t.clone() for n, t in base.items()}
    heads = o["train_heads"] or list(range(CFG.hydra_heads))
    lora = {}
    if o.get("lora_rank"):
        r, alpha = o["lora_rank"], o["lora_alpha"]
        for name in lora_targets(o):
            out_f, in_f = params[name].shape
            bound = 1.0 / math.sqrt(in_f)  # kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(in), 1/sqrt(in))
            a = ((torch.rand(r, in_f, generator=gen, dtype=torch.float32) * 2 - 1) * bound).to(dtype)
            lora[name] = {"A": a, "B": torch.zeros(out_f, r, dtype=dtype), "scaling": alpha / r, "A0": a.clone()}

    def trainable(name):
        if lora:
            return False
        if o["train_heads"]:
            return any(name.startswith(f"heads.{k}.") for k in o["train_heads"])
        return True

    for n in params:
        params[n].requires_grad_(trainable(n))
    lora_params = {}
    for name, ad in lora.items():
        stem = name[: -len(".weight")]
        lora_params[stem + ".lora_A.weight"] = ad["A"].requires_grad_(True)
        lora_params[stem + ".lora_B.weight"] = ad["B"].requires_grad_(True)
    train_named = [(n, t) for n, t in params.items() if t.requires_grad] + list(lora_params.items())
    decay = [t for n, t in train_named if t.dim() == 2 and not n.endswith("embeddings.weight")]
    no_decay = [t for n, t in train_named if not (t.dim() == 2 and not n.endswith("embeddings.weight"))]
    groups = [{"params": decay, "weight_decay": o["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    if o["optimizer"] == "adamw":
        opt = torch.optim.AdamW(groups, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])
    else:
        opt = torch.optim.SGD(groups, lr=o["lr"], momentum=o["momentum"])

    def effective():
        """Parameters as the model sees them: adapted weights are W + scaling * B A (dropout 0)."""
        eff = dict(params)
        for name, ad in lora.items():
            stem = name[: -len(".weight")]
            eff[name] = params[name] + ad["scaling"] * (lora_params[stem + ".lora_B.weight"] @
                                                        lora_params[stem + ".lora_A.weight"])
        return eff

    K, S = o["grad_accum"], o["steps"]
    out = {"lr": [], "loss": [], "head_loss": [], "grad_norm": []}
    for s in range(1, S + 1):
        lr = lr_at(o, s)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad(set_to_none=False)
        micro = [(sft_batches(o, (s - 1) * K + m) if o["objective"] == "sft"
                  else window_batches(tokens, o, (s - 1) * K + m)) for m in range(K)]
        counts = sum(int((t != IGNORE).sum()) for _, t in micro)
        eff = effective()
        head_sums = {k: torch.zeros((), dtype=dtype) for k in heads}
        for inputs, targets in micro:
            h = mf.forward_trunk(eff, inputs, CFG)
            for k in heads:
                logits = mf.lm_head(mf.run_head(eff, k, h, CFG), eff, CFG)
                head_sums[k] = head_sums[k] + F.cross_entropy(logits.reshape(-1, CFG.vocab_size), targets.reshape(-1),
                                                              ignore_index=IGNORE, reduction="sum")
        head_losses = [head_sums[k] / counts for k in heads]
        loss = torch.stack(head_losses).mean()
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_([t for _, t in train_named], o["clip"]) if o["clip"] > 0 else \
            torch.norm(torch.stack([t.grad.norm() for _, t in train_named]))
        opt.step()
        out["lr"].append(lr)
        out["loss"].append(float(loss))
        out["head_loss"].append([float(x) for x in head_losses])
        out["grad_norm"].append(float(norm))

    tensors = {
        "lr": torch.tensor(out["lr"], dtype=F64),
        "loss": torch.tensor(out["loss"], dtype=F64),
        "head_loss": torch.tensor(out["head_loss"], dtype=F64),
        "grad_norm": torch.tensor(out["grad_norm"], dtype=F64),
    }
    for n, t in train_named:
        tensors["final." + n] = t.detach().to(torch.float32)
    for name, ad in lora.items():
        stem = name[: -len(".weight")]
        tensors["init." + stem + ".lora_A.weight"] = ad["A0"].to(torch.float32)  # as drawn, before training
    return tensors


# The uncertainty head: judge head U reads answer head A's hidden state through the residual. The
# template and the two judge tokens use characters whose tiny-tokenizer ids are their bytes (< 64).
JUDGE = dict(answer_head=0, judge_head=2, template="{prompt}{answer}?", token_a="1", token_b="0")


def judge_fixture(base):
    """One Brier step of the judge head, in float64: the loss and the judge head's gradients.

    Pass 1 (answer head A, no gradient): A's greedy one-token answer to each prompt and A's hidden
    state (its last block's output) at the last prompt position. The rows' answers are then set so that
    A is right on the even rows and wrong on the odd ones. Pass 2: head U on template(prompt, A's
    answer), with a residual that is zero except A's hidden state added at the last position; score =
    sigmoid(logit('1') - logit('0')) at the last position; loss = mean (score - correct)^2.
    """
    p = {n: t.clone() for n, t in base.items()}
    A, U = JUDGE["answer_head"], JUDGE["judge_head"]
    rows, hidden, answers = [], [], []
    for prompt, _ in SFT_ROWS:
        ids = torch.tensor([list(prompt.encode())], dtype=torch.int64)
        h = mf.run_head(p, A, mf.forward_trunk(p, ids, CFG), CFG)
        logits = mf.lm_head(h, p, CFG)
        answer_id = int(torch.argmax(logits[0, -1]))  # ties to the lowest id, as torch.argmax
        answers.append(answer_id)
        hidden.append(h[0, -1])
    for i, (prompt, right) in enumerate(SFT_ROWS):
        given = chr(answers[i]) if i % 2 == 0 else right
        rows.append((prompt, given))
    ws = " \t\n\v\f\r"  # trimmed: ASCII whitespace only
    labels = torch.tensor([1.0 if chr(answers[i]).strip(ws) == rows[i][1].strip(ws) else 0.0
                           for i in range(len(rows))], dtype=F64)
    seqs = [list(JUDGE["template"].format(prompt=pr, answer=chr(a)).encode()) for (pr, _), a in zip(rows, answers)]
    T = max(len(x) for x in seqs)
    ids = torch.zeros(len(seqs), T, dtype=torch.int64)
    residual = torch.zeros(len(seqs), T, CFG.d_model, dtype=F64)
    last = []
    for b, x in enumerate(seqs):
        ids[b, : len(x)] = torch.tensor(x)
        residual[b, len(x) - 1] = hidden[b]
        last.append(len(x) - 1)
    for n in p:
        p[n].requires_grad_(n.startswith(f"heads.{U}."))
    with torch.no_grad():
        h = mf.forward_trunk(p, ids, CFG) + residual
    y = mf.run_head(p, U, h, CFG)
    pick = y[torch.arange(len(seqs)), torch.tensor(last)]          # (B, C)
    logits = mf.lm_head(pick, p, CFG)                              # (B, V)
    score = torch.sigmoid(logits[:, ord(JUDGE["token_a"])] - logits[:, ord(JUDGE["token_b"])])
    loss = ((score - labels) ** 2).mean()
    loss.backward()
    tensors = {"loss": loss.detach().reshape(1), "score": score.detach(), "label": labels,
               "answer_ids": torch.tensor(answers, dtype=torch.int64)}
    for n, t in p.items():
        if t.requires_grad:
            tensors["grad." + n] = t.grad.to(torch.float32)
    meta = {"options": json.dumps(JUDGE, sort_keys=True), "rows": json.dumps(rows)}
    return tensors, meta


RUNS = {
    # Everything trains: AdamW with weight decay, clipping, warm-up then cosine, grad-accum 2.
    "train_full": dict(objective="next-token", optimizer="adamw", lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8,
                       weight_decay=0.1, momentum=0.0, warmup=3, schedule="cosine", min_lr_ratio=0.1, steps=10,
                       batch=2, seq=8, grad_accum=2, clip=0.5, train_heads=[]),
    # Only heads 0 and 2 train (trunk, head 1 and the lm_head frozen).
    "train_heads": dict(objective="next-token", optimizer="adamw", lr=2e-2, beta1=0.9, beta2=0.95, eps=1e-8,
                        weight_decay=0.1, momentum=0.0, warmup=2, schedule="linear", min_lr_ratio=0.0, steps=10,
                        batch=3, seq=8, grad_accum=1, clip=1.0, train_heads=[0, 2]),
    # LoRA rank 4 (alpha 8) on w1, w2, w3 of heads 0 and 2; only the adapters train.
    "train_lora": dict(objective="next-token", optimizer="adamw", lr=2e-2, beta1=0.9, beta2=0.95, eps=1e-8,
                       weight_decay=0.1, momentum=0.0, warmup=2, schedule="cosine", min_lr_ratio=0.1, steps=10,
                       batch=2, seq=8, grad_accum=1, clip=1.0, train_heads=[0, 2], lora_rank=4, lora_alpha=8.0,
                       lora_heads=[0, 2]),
    # Supervised fine-tuning with the loss on the answers only: rows of different lengths padded in
    # batches of 3, grad-accum 2, so token weighting across micro-batches matters.
    "train_sft": dict(objective="sft", optimizer="adamw", lr=1e-2, beta1=0.9, beta2=0.95, eps=1e-8,
                      weight_decay=0.1, momentum=0.0, warmup=0, schedule="constant", min_lr_ratio=1.0, steps=5,
                      batch=3, seq=8, grad_accum=2, clip=1.0, train_heads=[]),
    # SGD with momentum and (coupled) weight decay, linear decay, no clipping.
    "train_sgd": dict(objective="next-token", optimizer="sgd", lr=5e-2, beta1=0.9, beta2=0.95, eps=1e-8,
                      weight_decay=0.01, momentum=0.9, warmup=1, schedule="linear", min_lr_ratio=0.2, steps=6,
                      batch=2, seq=8, grad_accum=1, clip=0.0, train_heads=[]),
}


def float32_error(ref, r32):
    """How far PyTorch's own float32 run of the same steps lands from the float64 reference: the floor a
    float32 implementation can be held to (a training run amplifies rounding step after step)."""
    def worst_rel(key):
        return max(abs(a - b) / abs(b) for a, b in zip(r32[key].flatten().tolist(), ref[key].flatten().tolist()))
    return {"loss": max(worst_rel("loss"), worst_rel("head_loss")), "grad_norm": worst_rel("grad_norm"),
            "weights": max(float((r32[k].float() - ref[k].float()).abs().max()) for k in ref if k.startswith("final."))}


def build_all():
    gen = torch.Generator().manual_seed(20261201)
    olmo = mf.random_olmo_state(CFG, gen)
    base = mf.perturb_heads(mf.load_olmo_state(olmo, CFG), CFG, gen)
    tokens = token_stream(gen, 1000)
    fixtures = {}
    base_tensors = {n: t.to(torch.float32) for n, t in base.items()}
    base_tensors["tokens"] = tokens
    fixtures["train_base.safetensors"] = (base_tensors, mf.metadata(
        "train_base", CFG, "the model every training fixture starts from, and the token stream",
        {"sft_rows": json.dumps(SFT_ROWS)}))
    # Every run starts from the float32 values (what the C++ side loads).
    base64 = {n: t.to(torch.float32).to(F64) for n, t in base.items()}
    judge_tensors, judge_meta = judge_fixture(base64)
    fixtures["train_judge.safetensors"] = (judge_tensors, mf.metadata(
        "train_judge", CFG, "one Brier step of the uncertainty head (options and rows in the metadata)", judge_meta))
    base32 = {n: t.to(torch.float32) for n, t in base.items()}
    for name, o in RUNS.items():
        seed = sum(name.encode()) + 7
        tensors = run(base64, tokens, o, torch.Generator().manual_seed(seed))
        fixtures[f"{name}.safetensors"] = (tensors, mf.metadata(
            name, CFG, "a training run of train_base's model (options in 'options')",
            {"options": json.dumps(o, sort_keys=True),
             "torch_float32_error": json.dumps(float32_error(tensors, run(base32, tokens, o,
                                                                          torch.Generator().manual_seed(seed),
                                                                          torch.float32)), sort_keys=True)}))
    return fixtures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures"))
    ap.add_argument("--check", action="store_true", help="compare with the files on disk, write nothing")
    args = ap.parse_args()
    torch.set_num_threads(1)
    fixtures = build_all()
    out_dir = os.path.abspath(args.out)
    ok = True
    for fname, (tensors, meta) in fixtures.items():
        path = os.path.join(out_dir, fname)
        if args.check:
            disk, _ = mf.load_safetensors(path)
            for n, t in tensors.items():
                d = disk.get(n)
                if d is None or d.shape != t.shape or not torch.allclose(d.to(F64), t.to(F64), rtol=1e-12, atol=1e-12):
                    print(f"{fname}: {n} differs", file=sys.stderr)
                    ok = False
            continue
        mf.save_safetensors(path, tensors, meta)
        loss = tensors["loss"].tolist() if "loss" in tensors else []
        print(f"{fname}: {len(tensors)} tensors, {os.path.getsize(path)} bytes"
              + (f", loss {loss[0]:.6f} -> {loss[-1]:.6f}" if loss else ""))
    if args.check:
        print("fixtures match" if ok else "fixtures DIFFER")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
