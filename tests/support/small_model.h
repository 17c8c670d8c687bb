// The small Hydra the training tests share: a one-block trunk and three one-block heads, d_model 32, four
// attention heads over two key/value heads (GQA), so a step takes milliseconds and every part runs.
#pragma once

#include <cstdint>

#include "hydra/config.h"

namespace hydra::test {

inline HydraTransformerConfig small_hydra_config(int64_t vocab_size) {
  HydraTransformerConfig c;
  nn::TransformerConfig& b = c.base_config;
  b.vocab_size = vocab_size;
  b.d_model = 32;
  b.n_layers = 2;
  b.n_heads = 4;
  b.n_kv_heads = 2;
  b.head_dim = 8;
  b.hidden_size = 40;
  b.rope_theta = 10000;
  c.n_heads = 3;
  c.trunk_layers = 1;
  c.head_layers = 1;
  return c;
}

}  // namespace hydra::test
