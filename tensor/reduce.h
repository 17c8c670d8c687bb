// Reduction kernels (no autograd): sum / mean over dims, max / argmax along one dim.
//
// Every kernel views its (dense) input as (outer, n, inner): `n` is the reduced extent, `outer` the
// dims before it and `inner` the dims after it, so output element (a, i) reduces x[a, 0..n-1, i].
// Inputs of any layout are accepted (made dense first); outputs are new dense tensors.
//
// Determinism: each output is accumulated in a fixed order that depends only on the shape, never on
// the thread count (see kSumChunk). Float32 is accumulated in double.
//
// The differentiable wrappers, which also validate the dims, are in autograd/ops_reduce.h.
//
// Naming: no autograd here; `_raw` returns a new tensor, `_into` writes into dst (differentiable ops: autograd/).
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace hydra::kernels {

// NOTE: a long sum is cut into chunks of this many terms; each chunk is summed left to right and the
// chunk partials are then added left to right. The chunk is a constant (never derived from the thread
// count) so the rounding, and hence the result, is the same however the chunks are spread over threads.
constexpr int64_t kSumChunk = 8192;

// Normalizes dims (negative counts from the end) and sorts them. Throws, naming `op` and the shape, if
// a dim is out of range or listed twice.
std::vector<int64_t> normalize_dims(const char* op, const std::vector<int64_t>& dims, const Shape& shape);

// The shape of a reduction's output: reduced dims become 1 (keepdim) or disappear. dims normalized.
Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& dims, bool keepdim);

// out = (Σ over dims of x) / divisor, accumulated in double and rounded once. dims normalized and
// sorted (normalize_dims); an empty list reduces nothing (a copy). divisor 1 is sum, count is mean.
// float32 / float64.
Tensor sum_raw(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim, double divisor = 1.0);

// Largest value along dim (normalized) and the position of its first occurrence (int64). A NaN counts
// as larger than everything, as in PyTorch. dim must not be empty. Any dtype.
struct MaxResult {
  Tensor values;
  Tensor indices;
};
MaxResult max_raw(const Tensor& x, int64_t dim, bool keepdim);

// The gradient of max: zeros of x_shape with dout[a, i] written at x[a, indices[a, i], i].
// dout and indices have max's output shape (keepdim or not; only the element order matters).
Tensor max_backward_raw(const Tensor& dout, const Tensor& indices, const Shape& x_shape, int64_t dim);

}  // namespace hydra::kernels
