// The Attention layer: projections, QK-norm, RoPE, the fused causal attention, and the KV cache.
#include "nn/attention.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "autograd/record.h"
#include "nn/attention_core.h"
#include "tensor/copy.h"

namespace hydra::nn {

namespace {

// The checks run before the members are built, so a bad config fails with its field named.
const TransformerConfig& checked(const TransformerConfig& cfg) {
  auto positive = [](const char* field, int64_t v) {
    HYDRA_CHECK(v >= 1, "Attention: TransformerConfig.", field, " = ", v, ": must be >= 1");
  };
  positive("d_model", cfg.d_model);
  positive("n_heads", cfg.n_heads);
  positive("n_kv_heads", cfg.n_kv_heads);
  positive("head_dim", cfg.head_dim);
  HYDRA_CHECK(cfg.n_heads % cfg.n_kv_heads == 0, "Attention: TransformerConfig.n_kv_heads = ", cfg.n_kv_heads,
              ": must divide n_heads = ", cfg.n_heads);
  return cfg;
}

}  // namespace

Attention::Attention(const TransformerConfig& cfg)
    : d_model(checked(cfg).d_model),
      n_heads(cfg.n_heads),
      n_kv_heads(cfg.n_kv_heads),
      head_dim(cfg.head_dim),
      qk_norm(cfg.qk_norm),
      w_q(cfg.d_model, cfg.n_heads * cfg.head_dim),
      w_k(cfg.d_model, cfg.n_kv_heads * cfg.head_dim),
      w_v(cfg.d_model, cfg.n_kv_heads * cfg.head_dim),
      w_out(cfg.n_heads * cfg.head_dim, cfg.d_model),
      q_norm(cfg.n_heads * cfg.head_dim, cfg.norm_eps),
      k_norm(cfg.n_kv_heads * cfg.head_dim, cfg.norm_eps),
      rope(cfg.head_dim, cfg.rope_theta) {
  register_module("w_q", w_q);
  register_module("w_k", w_k);
  register_module("w_v", w_v);
  register_module("w_out", w_out);
  if (qk_norm) {
    register_module("q_norm", q_norm);
    register_module("k_norm", k_norm);
  }
}

Tensor Attention::forward(const Tensor& x) {
  HYDRA_CHECK(x.dim() == 3 && x.size(2) == d_model, "Attention: expected x of shape (B, T, ", d_model, "), got ",
              shape_str(x.shape()));
  const int64_t B = x.size(0), T = x.size(1);
  std::vector<Tensor> qkv = forward_shared_input({&w_q, &w_k, &w_v}, x);
  Tensor q = qkv[0], k = qkv[1], v = qkv[2];
  if (qk_norm) {  // over the full projection width, before splitting into heads
    q = q_norm.forward(q);
    k = k_norm.forward(k);
  }
  // shape: (B, T, H*D) -> (B, T, H, D)
  q = reshape(q, {B, T, n_heads, head_dim});
  // shape: (B, T, Hkv*D) -> (B, T, Hkv, D)
  k = reshape(k, {B, T, n_kv_heads, head_dim});
  v = reshape(v, {B, T, n_kv_heads, head_dim});
  Tensor out;
  if (has_kv_cache()) {
    out = attend_with_cache(q, k, v);
  } else {
    const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
    out = causal_attention(apply_rope(q, 0, rope), apply_rope(k, 0, rope), v, /*q_start=*/0, scale);
  }
  // shape: (B, T, H, D) -> (B, T, H*D)
  return w_out.forward(reshape(out, {B, T, n_heads * head_dim}));
}

Tensor Attention::attend_with_cache(const Tensor& q, const Tensor& k, const Tensor& v) {
  const int64_t B = q.size(0), T = q.size(1), max_seq_len = k_cache_.size(1);
  HYDRA_CHECK(!any_requires_grad({q, k, v}),
              "Attention: the KV cache is for inference; a cached forward cannot record gradients (run it under "
              "NoGradGuard, or free_kv_cache() to train)");
  HYDRA_CHECK(B == k_cache_.size(0), "Attention: input batch size ", B, " does not match the KV cache's batch size ",
              k_cache_.size(0), " (init_kv_cache again to change it)");
  HYDRA_CHECK(k.dtype() == k_cache_.dtype(), "Attention: the KV cache holds ", dtype_name(k_cache_.dtype()),
              " but the keys are ", dtype_name(k.dtype()));
  HYDRA_CHECK(position_ + T <= max_seq_len, "Attention: writing ", T, " tokens at KV-cache position ", position_,
              " would pass max_seq_len = ", max_seq_len, " (needs ", position_ + T, ")");
  const int64_t pos = position_;
  Tensor q_rot = apply_rope(q, pos, rope), k_rot = apply_rope(k, pos, rope);
  // The new keys and values go to rows [pos, pos + T), in place.
  kernels::copy_into(narrow(k_cache_, 1, pos, T), k_rot);
  kernels::copy_into(narrow(v_cache_, 1, pos, T), v);
  // shape: (B, pos + T, Hkv, D): every key and value so far, read in place (no copy)
  Tensor keys = narrow(k_cache_, 1, 0, pos + T), values = narrow(v_cache_, 1, 0, pos + T);
  Tensor out = causal_attention(q_rot, keys, values, /*q_start=*/pos, 1.0 / std::sqrt(static_cast<double>(head_dim)));
  position_ += T;
  return out;
}

void Attention::init_kv_cache(int64_t batch_size, int64_t max_seq_len) {
  HYDRA_CHECK(batch_size >= 1 && max_seq_len >= 1, "Attention.init_kv_cache: batch_size = ", batch_size,
              " and max_seq_len = ", max_seq_len, " must both be >= 1");
  k_cache_ = zeros({batch_size, max_seq_len, n_kv_heads, head_dim}, DType::Float32);
  v_cache_ = zeros({batch_size, max_seq_len, n_kv_heads, head_dim}, DType::Float32);
  position_ = 0;
}

void Attention::check_has_cache(const char* op) const {
  HYDRA_CHECK(has_kv_cache(), "Attention.", op, ": there is no KV cache (call init_kv_cache first)");
}

void Attention::reset_kv_cache() {
  check_has_cache("reset_kv_cache");
  position_ = 0;
}

void Attention::rollback_kv_cache(int64_t n) {
  check_has_cache("rollback_kv_cache");
  HYDRA_CHECK(n >= 0, "Attention.rollback_kv_cache: n = ", n, " must be >= 0");
  position_ = std::max<int64_t>(0, position_ - n);
}

void Attention::sync_kv_cache(int64_t target_length) {
  check_has_cache("sync_kv_cache");
  const int64_t max_seq_len = k_cache_.size(1);
  HYDRA_CHECK(target_length >= 0 && target_length <= max_seq_len, "Attention.sync_kv_cache: target_length = ",
              target_length, " must be in [0, max_seq_len = ", max_seq_len, "]");
  position_ = target_length;
}

void Attention::free_kv_cache() {
  k_cache_ = Tensor();
  v_cache_ = Tensor();
  position_ = 0;
}

}  // namespace hydra::nn
