"""The benchmark's presets and the arithmetic that turns a time into GFLOP/s or a bandwidth fraction.

Shared by bench/torch_hydra.py (which builds the PyTorch model from these shapes) and
bench/model_vs_torch.py (which reports the rates). The shapes are hydra/config.cpp's presets of the same
names; the batch and sequence length are the benchmark's work size for each.

FLOP counts (multiply-adds count 2; counted, not measured):
  A dense product with P weights costs 2·P FLOP per token forward, 2·P for the gradient of its input and
  2·P for the gradient of its weight: 6·P per trained token, 4·P when only the input's gradient is needed
  (a frozen layer between trained ones), 2·P forward only.
  Causal attention per layer and sequence of T tokens, forward: Q·Kᵀ and P·V over the T(T+1)/2 pairs
  a causal mask keeps, 2 products × 2 FLOP × d per pair = 2·T(T+1)·d; backward twice that.
  The lm_head is a product of d·V weights, run once per head.
"""

PRESETS = {
    # vocab, model width, layers (trunk + head depth), attention heads, FFN width, trunk layers, heads
    "tiny": dict(vocab=4096, d=256, layers=4, heads=4, kv_heads=4, ffn=1024, trunk=2, n_heads=3, batch=8, seq=128),
    "small": dict(vocab=16384, d=512, layers=8, heads=8, kv_heads=8, ffn=2048, trunk=6, n_heads=4, batch=8, seq=256),
    "gpt2": dict(vocab=50304, d=768, layers=12, heads=12, kv_heads=12, ffn=2048, trunk=10, n_heads=2, batch=4, seq=256),
}

LORA_RANK = 8
LORA_TARGETS = ("w1", "w2", "w3")
DECODE_PROMPT = 16
DECODE_NEW = 128


def block_params(c):
    """Weights of one OLMo-2 block's products (norm weights are not products and are left out)."""
    d, hd = c["d"], c["d"] // c["heads"]
    attention = d * d + 2 * d * c["kv_heads"] * hd + d * d  # w_q, w_k, w_v, w_out
    return attention + 3 * d * c["ffn"]


def lora_params(c):
    """Adapter weights on one block's w1, w2, w3 at LORA_RANK: A (r × in) and B (out × r) each."""
    d, f, r = c["d"], c["ffn"], LORA_RANK
    return 3 * r * (d + f)


def attention_flops(c, T):
    """Forward FLOP of causal attention in one layer for one sequence of T tokens."""
    return 2 * T * (T + 1) * c["d"]


def step_flops(c, work, batch, seq):
    """FLOP of one training step of `work` (train, finetune, lora) on batch × seq tokens."""
    tokens = batch * seq
    head_layers = c["layers"] - c["trunk"]
    trunk, heads = c["trunk"] * block_params(c), c["n_heads"] * head_layers * block_params(c)
    lm_head = c["n_heads"] * c["d"] * c["vocab"]
    attn_trunk = batch * c["trunk"] * attention_flops(c, seq)
    attn_heads = batch * c["n_heads"] * head_layers * attention_flops(c, seq)
    if work == "train":
        return 6 * (trunk + heads + lm_head) * tokens + 3 * (attn_trunk + attn_heads)
    if work == "finetune":  # trunk forward only
        return 2 * trunk * tokens + attn_trunk + 6 * (heads + lm_head) * tokens + 3 * attn_heads
    if work == "lora":  # heads and lm_head frozen but backpropagated through; adapters trained
        adapters = c["n_heads"] * head_layers * lora_params(c)
        return 2 * trunk * tokens + attn_trunk + 4 * (heads + lm_head) * tokens + 6 * adapters * tokens + 3 * attn_heads
    raise ValueError(work)


def decode_bytes_per_token(c):
    """float32 bytes of weights one decoded token must read at least: the trunk, every head, and the
    lm_head once (all heads' rows in one pass), plus one embedding row. The KV cache is left out (at
    the benchmark's 16 + 128 positions it is < 2% of the weights)."""
    head_layers = c["layers"] - c["trunk"]
    weights = (c["trunk"] + c["n_heads"] * head_layers) * block_params(c) + c["d"] * c["vocab"] + c["d"]
    return 4 * weights


def model_params(c):
    """All parameters: embedding, blocks with their four norm weights, final norm, lm_head."""
    head_layers = c["layers"] - c["trunk"]
    hd = c["d"] // c["heads"]
    norms = 2 * c["d"] + c["d"] + c["kv_heads"] * hd  # two block norms, q_norm, k_norm
    blocks = (c["trunk"] + c["n_heads"] * head_layers) * (block_params(c) + norms)
    return c["vocab"] * c["d"] + blocks + c["d"] + c["d"] * c["vocab"]
