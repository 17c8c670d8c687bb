// Joining tensors: concatenation along an existing dim and stacking along a new one (both copy).
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace hydra {

// All inputs must have the same dtype and equal shapes except along dim.
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
// All inputs must have equal shapes; the output has a new dim of size xs.size() at position dim.
Tensor stack(const std::vector<Tensor>& xs, int64_t dim);

}  // namespace hydra
