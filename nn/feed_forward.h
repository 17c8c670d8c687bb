// The OLMo-2 feed-forward block, SwiGLU (docs/model.md, 'SwiGLU feed-forward'):
//
//   FFN(x) = w2( silu(w1 x) * w3 x ),   silu(g) = g * sigmoid(g)
//
// Shapes: x (..., C); w1, w3: [F, C] (HF gate_proj, up_proj); w2: [C, F] (down_proj) -> (..., C).
// No biases. swiglu is the fused elementwise middle: one pass forward, one pass backward (dgate and dup
// together), saving only its two inputs. swiglu_reference composes silu and mul, for the tests.
#pragma once

#include <cstdint>

#include "nn/linear.h"
#include "nn/module.h"

namespace hydra::nn {

// silu(gate) * up; gate and up of equal shape and dtype (float). Errors name "swiglu" and both shapes.
Tensor swiglu(const Tensor& gate, const Tensor& up);
Tensor swiglu_reference(const Tensor& gate, const Tensor& up);

class FeedForward : public Module {
 public:
  // Children "w1" (d_model -> hidden), "w2" (hidden -> d_model), "w3" (d_model -> hidden), in
  // OLMo-core's order. (Initialisation order is different: w1, w3, w2; see nn/init.h.)
  FeedForward(int64_t d_model, int64_t hidden_size);

  // x (..., d_model) -> (..., d_model).
  Tensor forward(const Tensor& x) const;

  int64_t d_model, hidden_size;
  Linear w1, w2, w3;
};

}  // namespace hydra::nn
