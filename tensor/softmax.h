// Softmax and log-softmax kernels (no autograd), forward and backward.
//
// Softmax kernels view the (dense) input as (outer, n, inner) around `dim`, so row (a, i) is
// x[a, 0..n-1, i] (stride `inner`; stride 1 when dim is last, the common case). Each row is handled
// by one thread from start to end, so results do not depend on the thread count.
// NOTE: for a dim other than the last, rows are strided, which is cache-unfriendly when `inner` is
// large (about 5x slower per element). Hydra's models only normalize over the last dim; moving the
// dim last first would cost two transposing copies, which measured no faster.
//
// The differentiable wrappers are in autograd/ops_softmax.h; the fused cross-entropy is nn/cross_entropy.h.
//
// Naming: no autograd here; `_raw` returns a new tensor, `_into` writes into dst (differentiable ops: autograd/).
#pragma once

#include "tensor/tensor.h"

namespace hydra::kernels {

// y = softmax(x) or log_softmax(x) along dim (normalized). Stable: the row maximum is subtracted.
Tensor softmax_raw(const Tensor& x, int64_t dim, bool log);
// dx from dy and the forward's output y (same shape):
//   softmax:      dx = y * (dy - Σ_row dy * y)
//   log_softmax:  dx = dy - exp(y) * Σ_row dy
Tensor softmax_backward_raw(const Tensor& dy, const Tensor& y, int64_t dim, bool log);

}  // namespace hydra::kernels
