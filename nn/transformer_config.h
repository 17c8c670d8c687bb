// TransformerConfig: the shape of an OLMo-2 transformer (docs/model.md, 'Configurations').
//
// A plain struct; validate() names the field, the value and the rule it breaks. Layers take the pieces
// they need from it. The Hydra split (trunk/heads) lives in hydra/config.h on top of this.
#pragma once

#include <cstdint>
#include <string>

namespace hydra::nn {

struct TransformerConfig {
  int64_t vocab_size = 0;    // V: embedding rows and logits (padded vocab, e.g. 100352)
  int64_t d_model = 0;       // C
  int64_t n_layers = 0;
  int64_t n_heads = 0;       // H: attention heads
  int64_t n_kv_heads = 0;    // key/value heads; == n_heads is plain multi-head attention, fewer is GQA
  int64_t head_dim = 0;      // D = d_model / n_heads for every OLMo-2 config
  int64_t hidden_size = 0;   // F: SwiGLU hidden width (w1, w3: [F, C]; w2: [C, F])
  double rope_theta = 500000.0;
  double norm_eps = 1e-6;    // RMSNorm eps, inside the square root
  bool qk_norm = true;       // RMSNorm over the full q and k projections before splitting heads
  double init_std = 0.02;    // trunc_normal(0, std, -3 std, +3 std) for every matrix

  // Throws hydra::Error naming the first field that breaks a rule.
  void validate() const;
  // "vocab 4096, d_model 256, 4 layers, 4 heads (4 kv) x 64, ffn 1024, rope 500000, eps 1e-06"
  std::string summary() const;
};

}  // namespace hydra::nn
