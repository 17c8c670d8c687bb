// Rotary position embeddings (RoPE), OLMo-core / HF "rotate-half" style (docs/model.md, 'RoPE').
//
// For head_dim D and position p, the angle of pair i (i < D/2) is p · inv_freq[i] with
// inv_freq[i] = 1 / θ^(2i/D). The two halves of a head vector are rotated together:
//   out = x · cos + rotate_half(x) · sin,   rotate_half([x1, x2]) = [-x2, x1]
// where cos/sin are tables of emb = cat(freqs, freqs), so element d and d + D/2 share one angle.
//
// x is (B, T, H, D); its time step t sits at position start_pos + t (start_pos is the KV-cache
// position when decoding, else 0). RotaryEmbedding has no parameters: it only caches the tables.
// The tables are float32 whatever x's dtype (as OLMo-core computes them); a float64 x is rotated by
// the same float32 angles, in float64.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "tensor/tensor.h"

namespace hydra::nn {

class RotaryEmbedding {
 public:
  RotaryEmbedding(int64_t head_dim, double theta);
  RotaryEmbedding(const RotaryEmbedding&) = delete;
  RotaryEmbedding& operator=(const RotaryEmbedding&) = delete;

  int64_t head_dim() const { return head_dim_; }
  double theta() const { return theta_; }

  // cos and sin of positions [start, start + length), each (length, D) float32, as views of the cache
  // (which grows on demand, thread-safely; an entry never changes once computed).
  struct Tables {
    Tensor cos, sin;
  };
  Tables tables(int64_t start, int64_t length) const;

 private:
  int64_t head_dim_;
  double theta_;
  std::vector<float> inv_freq_;  // (D/2)
  mutable std::mutex mutex_;
  mutable Tensor cos_, sin_;     // (cached positions, D); replaced, never written, when grown
};

// The fused op: forward rotates by +angle, backward by -angle (a rotation's transpose is its inverse).
Tensor apply_rope(const Tensor& x, int64_t start_pos, const RotaryEmbedding& rope);

// The same math from autograd primitives (narrow, neg, concat, mul, add, broadcast_to), for tests.
Tensor apply_rope_reference(const Tensor& x, int64_t start_pos, const RotaryEmbedding& rope);

}  // namespace hydra::nn
