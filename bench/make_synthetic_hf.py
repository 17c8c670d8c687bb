#!/usr/bin/python3
"""A synthetic HuggingFace OLMo-2 checkpoint of the 1B shape (random weights), for the loading benchmarks.

    /usr/bin/python3 bench/make_synthetic_hf.py OUT_DIR [--dtype bf16|f32] [--max-shard-bytes N] [--seed S]

Writes OUT_DIR/config.json (Olmo2ForCausalLM: vocab 100352, d 2048, 16 layers, 16 heads, FFN 8192) and the
weights as safetensors shards with model.safetensors.index.json (or one model.safetensors when it fits in
a shard). Matrices are normal(0, 0.02), norms 1; BF16 keeps the upper half of each float32 (truncation:
the values only need to be finite and realistic). One tensor is in memory at a time, so the script needs
about 1.5 GB whatever the dtype. About 3 GB in BF16, 6 GB in F32: check the free disk space first.
Needs numpy only (not the product: benchmarks may use Python).
"""
import argparse
import json
import os

import numpy as np

VOCAB, D, LAYERS, HEADS, FFN = 100352, 2048, 16, 16, 8192


def tensor_list():
    """(HF name, shape, is_norm) in the order HF writes them."""
    out = [("model.embed_tokens.weight", (VOCAB, D), False)]
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        out += [(p + "self_attn.q_proj.weight", (D, D), False), (p + "self_attn.k_proj.weight", (D, D), False),
                (p + "self_attn.v_proj.weight", (D, D), False), (p + "self_attn.o_proj.weight", (D, D), False),
                (p + "self_attn.q_norm.weight", (D,), True), (p + "self_attn.k_norm.weight", (D,), True),
                (p + "post_attention_layernorm.weight", (D,), True), (p + "mlp.gate_proj.weight", (FFN, D), False),
                (p + "mlp.up_proj.weight", (FFN, D), False), (p + "mlp.down_proj.weight", (D, FFN), False),
                (p + "post_feedforward_layernorm.weight", (D,), True)]
    out += [("model.norm.weight", (D,), True), ("lm_head.weight", (VOCAB, D), False)]
    return out


def values(shape, is_norm, rng, dtype):
    x = np.ones(shape, np.float32) if is_norm else (rng.standard_normal(shape, np.float32) * np.float32(0.02))
    if dtype == "BF16":
        return (x.view(np.uint32) >> 16).astype(np.uint16).tobytes()
    return x.tobytes()


def write_shard(path, entries, rng, dtype):
    """entries: [(name, shape, is_norm)]; writes the header, then each tensor as it is drawn."""
    item = 2 if dtype == "BF16" else 4
    header, offset = {}, 0
    for name, shape, _ in entries:
        n = int(np.prod(shape)) * item
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path + ".partial", "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for _, shape, is_norm in entries:
            f.write(values(shape, is_norm, rng, dtype))
    os.replace(path + ".partial", path)
    return offset


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    ap.add_argument("--max-shard-bytes", type=int, default=2_000_000_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    dtype = "BF16" if args.dtype == "bf16" else "F32"
    item = 2 if dtype == "BF16" else 4
    os.makedirs(args.out, exist_ok=False)
    rng = np.random.default_rng(args.seed)

    shards, current, size = [], [], 0
    for entry in tensor_list():
        n = int(np.prod(entry[1])) * item
        if current and size + n > args.max_shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(entry)
        size += n
    shards.append(current)

    weight_map, total = {}, 0
    for k, entries in enumerate(shards):
        name = "model.safetensors" if len(shards) == 1 else f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        total += write_shard(os.path.join(args.out, name), entries, rng, dtype)
        weight_map.update({e[0]: name for e in entries})
        print(f"wrote {name}", flush=True)
    if len(shards) > 1:
        with open(os.path.join(args.out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    config = {"architectures": ["Olmo2ForCausalLM"], "attention_bias": False, "hidden_act": "silu",
              "hidden_size": D, "initializer_range": 0.02, "intermediate_size": FFN, "max_position_embeddings": 4096,
              "model_type": "olmo2", "num_attention_heads": HEADS, "num_hidden_layers": LAYERS,
              "num_key_value_heads": HEADS, "rms_norm_eps": 1e-6, "rope_scaling": None, "rope_theta": 500000,
              "tie_word_embeddings": False, "torch_dtype": "bfloat16" if dtype == "BF16" else "float32",
              "vocab_size": VOCAB}
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print(f"{args.out}: {total} bytes of {dtype} weights in {len(shards)} file(s)")


if __name__ == "__main__":
    main()
