// Linear: y = x Wᵀ with W stored [out, in] as PyTorch and OLMo-core do. No bias (OLMo-2 has none).
//
// Shapes: x (..., in), weight (out, in) -> y (..., out). Every leading dim is a row: the product is one
// GEMM over N = numel(x) / in rows, with the weight handed to BLAS as a transpose flag, never copied.
// Backward (through autograd matmul): dx = dy W, dW = dyᵀ x summed over all N rows.
//
// linear_reference is the same map built from broadcasting, mul and sum (no matmul), for the tests.
#pragma once

#include <cstdint>

#include "nn/module.h"

namespace hydra::nn {

// x (..., in) float, weight (out, in) of x's dtype -> (..., out). Errors name "linear" and both shapes.
Tensor linear(const Tensor& x, const Tensor& weight);
// The same result as Σ_in x[..., 1, in] * weight[out, in], materialising (N, out, in): tests only.
Tensor linear_reference(const Tensor& x, const Tensor& weight);

class Linear : public Module {
 public:
  // weight: [out_features, in_features], registered as "weight" (a meta tensor until materialized).
  Linear(int64_t in_features, int64_t out_features);

  // x (..., in_features) -> (..., out_features).
  Tensor forward(const Tensor& x) const;

  int64_t in_features, out_features;
  Tensor weight;
};

}  // namespace hydra::nn
