// Softmax and log-softmax along a dim, computed stably (the row maximum is subtracted first).
#pragma once

#include "tensor/tensor.h"

namespace hydra {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

}  // namespace hydra
