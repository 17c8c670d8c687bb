// Differentiable views: new shape/strides over the same storage, no copy (except where noted).
// Each backward maps the output gradient back to the input's shape.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace hydra {

// New shape with the same elements in row-major order; one dim may be -1 (inferred).
// view() never copies and fails if the layout does not allow it; reshape() copies when it must.
Tensor view(const Tensor& x, const Shape& shape);
Tensor reshape(const Tensor& x, const Shape& shape);
// Output dim i is input dim dims[i]. dims must be a permutation of 0..ndim-1.
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
// Elements start..start+length-1 of dim.
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
// Elements start..end-1 of dim (Python's x[..., start:end, ...], negative indices count from the end).
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end);
// Index `index` of dim, which is removed.
Tensor select(const Tensor& x, int64_t dim, int64_t index);
// Inserts / removes a size-1 dim.
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor squeeze(const Tensor& x, int64_t dim);
// Repeats size-1 dims (and adds leading dims) to reach `shape` without copying (stride 0); -1 keeps a
// dim. Backward sums the gradient over the repeated dims. broadcast_to is the same op under the name
// elementwise code uses.
Tensor expand(const Tensor& x, const Shape& shape);
Tensor broadcast_to(const Tensor& x, const Shape& shape);
// x itself (as a new handle) when already dense row-major, else a dense copy.
Tensor contiguous(const Tensor& x);
// A dense copy that owns its memory.
Tensor clone(const Tensor& x);

}  // namespace hydra
