// Indexing by integer tensors, with scatter-add backward (how an embedding table gets its gradient).
// Indices are int32 or int64; an index out of range is an error naming the value and the dim size.
#pragma once

#include "tensor/tensor.h"

namespace hydra {

// out = x with dim `dim` replaced by the entries listed in the 1-D `index`:
// out[..., i, ...] = x[..., index[i], ...]. Backward scatter-adds (repeated indices sum).
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// PyTorch's gather: index has x's number of dims, index.size(d) <= x.size(d) for d != dim, and
// out[i][j][k] = x[index[i][j][k]][j][k] for dim 0 (likewise for other dims). out.shape == index.shape.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);

}  // namespace hydra
