// The OLMo-2 transformer block (docs/model.md, 'The OLMo-2 block'): norms on the sublayer *outputs*, no
// pre-norm.
//
//   h   = x + attention_norm(attention(x))
//   out = h + feed_forward_norm(feed_forward(h))
//
// Children (OLMo-core names): attention, attention_norm, feed_forward, feed_forward_norm.
#pragma once

#include "nn/attention.h"
#include "nn/feed_forward.h"
#include "nn/module.h"
#include "nn/rms_norm.h"
#include "nn/transformer_config.h"

namespace hydra::nn {

class TransformerBlock : public Module {
 public:
  explicit TransformerBlock(const TransformerConfig& config);

  // x: (B, T, C) -> (B, T, C). Non-const: attention may advance its KV cache.
  Tensor forward(const Tensor& x);

  Attention attention;
  RMSNorm attention_norm;
  FeedForward feed_forward;
  RMSNorm feed_forward_norm;
};

}  // namespace hydra::nn
