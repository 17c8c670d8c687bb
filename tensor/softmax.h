// Softmax, log-softmax and fused cross-entropy kernels (no autograd), forward and backward.
//
// Softmax kernels view the (dense) input as (outer, n, inner) around `dim`, so row (a, i) is
// x[a, 0..n-1, i] (stride `inner`; stride 1 when dim is last, the common case). Each row is handled
// by one thread from start to end, so results do not depend on the thread count.
// NOTE: for a dim other than the last, rows are strided, which is cache-unfriendly when `inner` is
// large (about 5x slower per element). Hydra's models only normalize over the last dim; moving the
// dim last first would cost two transposing copies, which measured no faster.
//
// Cross-entropy works on logits (..., V) viewed as N = numel / V rows of V: it never builds a one-hot
// or a full softmax; the forward keeps one logsumexp per row for the backward.
//
// The differentiable wrappers are autograd/ops_softmax.h and autograd/ops_loss.h.
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

struct CrossEntropyForward {
  Tensor loss;     // 0-d, logits' dtype: mean over counted rows of lse - logit[target] (NaN if count 0)
  Tensor lse;      // (N) logits' dtype: logsumexp of each row (0 for ignored rows)
  int64_t count = 0;  // rows whose target is not ignore_index
};

// Validates the arguments (shapes, dtypes, every target value; errors name "cross_entropy") and
// computes the loss. logits (..., V) float32/float64, targets (...) int32/int64.
CrossEntropyForward cross_entropy_forward_raw(const Tensor& logits, const Tensor& targets, int64_t ignore_index);

// dlogits = (softmax(logits) - onehot(target)) * dloss / count per counted row, 0 for ignored rows.
// softmax is recomputed row by row as exp(logit - lse). dloss is the 0-d upstream gradient.
Tensor cross_entropy_backward_raw(const Tensor& logits, const Tensor& targets, const Tensor& lse, int64_t count,
                              const Tensor& dloss, int64_t ignore_index);

}  // namespace hydra::kernels
