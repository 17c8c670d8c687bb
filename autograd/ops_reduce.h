// Reductions. Results are bit-identical for any thread count: each output element is summed in a
// fixed order, and long sums are cut into fixed-size chunks whose partial sums are added in order.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace hydra {

// Sum / mean of every element: a 0-d tensor.
Tensor sum(const Tensor& x);
Tensor mean(const Tensor& x);
// Over the listed dims (negative counts from the end; each at most once).
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
// Largest value along dim. Backward sends the gradient to the first position holding the maximum.
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
// Position (int64) of the first maximum along dim. Not differentiable.
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);

}  // namespace hydra
