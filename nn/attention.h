// Attention: OLMo-2's causal self-attention layer, with an optional KV cache for decoding
// (docs/model.md, 'Attention' and 'The KV cache').
//
//   q = q_norm(w_q x), k = k_norm(w_k x), v = w_v x     (QK-norm over the full width, before the heads)
//   q, k, v: (B, T, H*D) -> (B, T, H, D) (k, v with Hkv heads)
//   q, k = RoPE(q, k) at positions start_pos..start_pos+T-1
//   out = w_out(causal_attention(q, k, v, scale 1/√D) as (B, T, H*D))
//
// x: (B, T, d_model) -> (B, T, d_model). Children, in OLMo-core's names: w_q, w_k, w_v, w_out and, only
// when cfg.qk_norm, q_norm (n_heads*head_dim) and k_norm (n_kv_heads*head_dim). Without qk_norm the
// two RMSNorm members exist but are not registered (no parameters, never called).
//
// KV cache (OLMo-core's flash-attn semantics): k_cache and v_cache are (B, max_seq_len, Hkv, D) float32,
// zeroed, with one position counter for the whole batch. A cached forward applies RoPE at the counter,
// writes the new k, v (after RoPE) at rows [pos, pos + T), attends causally to rows [0, pos + T) and
// advances the counter by T. It is for inference only: it is an error when a gradient would be needed
// (run it under NoGradGuard). Without a cache the forward starts at position 0 and is differentiable.
#pragma once

#include <cstdint>

#include "nn/linear.h"
#include "nn/module.h"
#include "nn/rms_norm.h"
#include "nn/rope.h"
#include "nn/transformer_config.h"

namespace hydra::nn {

class Attention : public Module {
 public:
  explicit Attention(const TransformerConfig& cfg);

  // x (B, T, d_model) -> (B, T, d_model). Uses (and advances) the KV cache when one is allocated.
  Tensor forward(const Tensor& x);

  // Allocates fresh zeroed caches for batch_size sequences of up to max_seq_len tokens; position 0.
  void init_kv_cache(int64_t batch_size, int64_t max_seq_len);
  // Position 0 (the contents stay; they are overwritten as new tokens arrive).
  void reset_kv_cache();
  // Position -= n, not below 0 (undoes rejected speculative tokens).
  void rollback_kv_cache(int64_t n);
  // Position = target_length, 0 <= target_length <= max_seq_len.
  void sync_kv_cache(int64_t target_length);
  // Drops the caches: forward attends over its input alone again.
  void free_kv_cache();
  bool has_kv_cache() const { return k_cache_.defined(); }
  int64_t kv_position() const { return position_; }

  int64_t d_model, n_heads, n_kv_heads, head_dim;
  bool qk_norm;
  Linear w_q, w_k, w_v, w_out;
  RMSNorm q_norm, k_norm;
  RotaryEmbedding rope;

 private:
  // RoPE at the cache position, cache write, attention over the cache; q (B, T, H, D), k, v (B, T, Hkv, D).
  Tensor attend_with_cache(const Tensor& q, const Tensor& k, const Tensor& v);
  void check_has_cache(const char* op) const;

  Tensor k_cache_, v_cache_;  // (B, max_seq_len, Hkv, D) float32, or undefined
  int64_t position_ = 0;      // rows [0, position_) of the caches hold this sequence's keys and values
};

}  // namespace hydra::nn
