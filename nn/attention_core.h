// Causal scaled-dot-product attention as one fused, flash-attention-style op.
//
//   q: (B, Tq, H, D)   k, v: (B, Tk, Hkv, D)   ->   out: (B, Tq, H, D)
//
// Query i sits at absolute position q_start + i and attends keys j <= q_start + i:
//   out_i = Σ_j softmax_j(scale · q_i·k_j) v_j
// Without a KV cache q_start = 0 and Tk = Tq; with one, k/v are the cache rows [0, q_start + Tq) and
// Tk >= q_start + Tq is required. Grouped-query attention: H % Hkv == 0 and query head h reads kv head
// h / (H / Hkv).
//
// Inputs are read in place in this (B, T, H, D) layout, the one the projections produce, through their
// strides (any layout whose last dim is dense: no permute copies). The forward tiles queries and keys
// into blocks and keeps an online softmax per query row (running max and sum, rescaling the output
// accumulator), so it never holds more than one (query block × key block) score tile per task; it saves
// only out and the per-row logsumexp (B, H, Tq; float64). The backward recomputes the probabilities tile
// by tile from q, k and the logsumexp (FlashAttention-2). Fully masked key blocks are skipped.
//
// Deterministic for any thread count: the backward runs one task per (batch, kv head), which walks key
// blocks and, inside each, the query blocks that see it, in a fixed order; every gradient row belongs to
// one task, so nothing is summed across threads. Each tile's probabilities are recomputed once and feed
// dQ, dK and dV together. (Parallelism is B · Hkv tasks, plenty for training batches.)
// float32 and float64.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace hydra::nn {

Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t q_start, double scale);

// The same math from autograd primitives (permute, expand, matmul, a -inf mask, softmax), holding the
// full (B, H, Tq, Tk) matrices: for tests only.
Tensor causal_attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, int64_t q_start,
                                  double scale);

}  // namespace hydra::nn
