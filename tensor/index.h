// Indexing kernels (no autograd): selecting by integer indices, and the scatter-adds that are their
// backward. The differentiable wrappers are in autograd/ops_index.h.
//
// `dim` is already normalised (0..ndim-1). Indices are int32 or int64 tensors of any layout; every index
// must lie in [0, size of dim) (negative indices are errors, as in PyTorch). index_select_raw and
// index_add_into take the 1-D index as already checked (check_index_1d, or the embedding's token-id check:
// one check per forward, at the API boundary) and only assert it; gather_raw and scatter_add_into check
// theirs, the error naming the op, the bad value, its position and the dim size. Outputs are new dense
// tensors.
//
// Determinism: the scatter-adds never race. Each destination element is owned by one task, which adds
// its contributions in index order, so results are bit-identical for any thread count.
//
// Naming: no autograd here; `_raw` returns a new tensor, `_into` writes into dst (differentiable ops: autograd/).
#pragma once

#include "tensor/tensor.h"

namespace hydra::kernels {

// Error unless index is an int32/int64 1-D tensor whose every entry is in [0, x_shape[dim]), naming op,
// the first bad value, its position and the dim size.
void check_index_1d(const char* op, const Tensor& index, const Shape& x_shape, int64_t dim);

// out = x with dim replaced by the 1-D index: out[..., i, ...] = x[..., index[i], ...]. Any dtype.
// x (..., N, ...) and index (n) -> out (..., n, ...).
Tensor index_select_raw(const Tensor& x, int64_t dim, const Tensor& index);

// The backward of index_select: dst[..., index[i], ...] += src[..., i, ...] for i = 0, 1, ... in order,
// so repeated indices sum. dst dense float, src of index_select's output shape (any layout).
void index_add_into(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src);

// PyTorch's gather: out[p] = x[p with p[dim] replaced by index[p]]. index has x's number of dims and
// index.size(d) <= x.size(d) for d != dim; out.shape == index.shape. Any dtype.
Tensor gather_raw(const Tensor& x, int64_t dim, const Tensor& index);

// The backward of gather (PyTorch's scatter_add_): dst[p with p[dim] = index[p]] += src[p] for every p
// of index's shape; contributions to one element sum in order of p[dim]. dst dense float.
void scatter_add_into(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src);

}  // namespace hydra::kernels
