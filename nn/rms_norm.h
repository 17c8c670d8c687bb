// RMSNorm as OLMo-2 uses it (docs/model.md, 'RMSNorm'): over the last dim,
//
//   y = x * rsqrt(mean(x², -1) + eps) * w
//
// with the weight applied as w (not 1 + w), eps inside the root and no bias.
// Shapes: x (..., C), weight (C) -> y (..., C); the N = numel / C rows are independent.
//
// rms_norm is a fused row kernel: the forward saves one rstd per row (N values) and the backward is
// one more pass over the rows that produces dx and dw together. rms_norm_reference is the same
// formula from autograd primitives (pow, mean, add_scalar, rsqrt, mul, broadcast_to), for the tests.
// NOTE: numerics. Row sums are accumulated in double, also for float32 input (OLMo computes in float32;
// the double sum is at least as accurate). dw sums over rows in fixed blocks of rows whose partials
// are added in block order, so it is bit-identical for any thread count.
#pragma once

#include <cstdint>

#include "nn/module.h"

namespace hydra::nn {

// x (..., C) float, weight (C) of x's dtype. Errors name "rms_norm" and both shapes.
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps);
Tensor rms_norm_reference(const Tensor& x, const Tensor& weight, double eps);

class RMSNorm : public Module {
 public:
  // weight: [size], registered as "weight"; initialise it to ones (init_ones_, nn/init.h).
  RMSNorm(int64_t size, double eps);

  // x (..., size) -> (..., size).
  Tensor forward(const Tensor& x) const;

  int64_t size;
  double eps;
  Tensor weight;
};

}  // namespace hydra::nn
