// LMHead: the final RMSNorm, then the projection to the vocabulary (OLMo-core's LMHead, no bias).
//
//   logits = w_out( norm(x) )
//
// Shapes: x (B, T, C) -> logits (B, T, V); with last_token_only, only position T-1 goes through the
// norm and the projection and logits are (B, 1, V) (what decoding needs, at 1/T of the cost).
// The lm_head owns the final norm: trunk and head outputs reaching it are pre-norm.
#pragma once

#include <cstdint>

#include "nn/linear.h"
#include "nn/module.h"
#include "nn/rms_norm.h"

namespace hydra::nn {

class LMHead : public Module {
 public:
  // Children "norm" (RMSNorm of d_model) and "w_out" (d_model -> vocab_size), in OLMo-core's order.
  LMHead(int64_t d_model, int64_t vocab_size, double eps);

  // x (B, T, d_model) -> (B, T, vocab_size), or (B, 1, vocab_size) with last_token_only.
  Tensor forward(const Tensor& x, bool last_token_only = false) const;

  int64_t d_model, vocab_size;
  RMSNorm norm;
  Linear w_out;
};

}  // namespace hydra::nn
