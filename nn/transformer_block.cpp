#include "nn/transformer_block.h"

#include "autograd/ops.h"

namespace hydra::nn {

TransformerBlock::TransformerBlock(const TransformerConfig& config)
    : attention(config),
      attention_norm(config.d_model, config.norm_eps),
      feed_forward(config.d_model, config.hidden_size),
      feed_forward_norm(config.d_model, config.norm_eps) {
  register_module("attention", attention);
  register_module("attention_norm", attention_norm);
  register_module("feed_forward", feed_forward);
  register_module("feed_forward_norm", feed_forward_norm);
}

Tensor TransformerBlock::forward(const Tensor& x) {
  Tensor h = add(x, attention_norm.forward(attention.forward(x)));
  return add(h, feed_forward_norm.forward(feed_forward.forward(h)));
}

}  // namespace hydra::nn
