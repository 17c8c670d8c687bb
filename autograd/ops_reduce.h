// Reductions. Results are bit-identical for any thread count: each output element is summed in a
// fixed order, and long sums are cut into fixed-size chunks whose partial sums are added in order
// (tensor/reduce.h). float32 is accumulated in double.
//
// Errors name the op, the dim and the shape: "sum: dim 3 is out of range for a tensor with 2 dims
// (shape [2, 3])".
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace hydra {

// Sum / mean of every element: a 0-d tensor. The mean of no elements is NaN, as PyTorch.
Tensor sum(const Tensor& x);
Tensor mean(const Tensor& x);
// Over the listed dims (negative counts from the end; each at most once). keepdim leaves the reduced
// dims in place with size 1. Backward spreads dout (/ count for mean) back over the reduced dims.
// NOTE: an empty list reduces nothing (a copy), as NumPy's axis=(); PyTorch's dim=[] reduces all.
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
// Largest value along dim (a NaN counts as largest). Backward sends the gradient to the first
// position holding the maximum. The dim must not be empty.
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
// Position (int64) of the first maximum along dim. Not differentiable.
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);

}  // namespace hydra
