// Softmax and log-softmax along a dim (negative counts from the end), computed stably: the row
// maximum is subtracted first, so huge inputs do not overflow. float32 / float64; x has >= 1 dim.
//
// Backward is a fused row kernel that uses only the saved output y:
//   softmax:      dx = y * (dy - Σ_row dy * y)
//   log_softmax:  dx = dy - exp(y) * Σ_row dy
#pragma once

#include "tensor/tensor.h"

namespace hydra {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

}  // namespace hydra
