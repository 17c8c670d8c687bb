// Cross-entropy of logits against class targets, as one fused op:
//
//   loss = (1 / count) · Σ over counted rows r of ( logsumexp(logits[r]) - logits[r, targets[r]] )
//
// Shapes: logits (..., V) float32/float64, seen as N = numel / V rows of V classes; targets (...) int32 or
// int64, logits' shape without its last dim, each a class in [0, V) or ignore_index. A row whose target is
// ignore_index takes no part (count is the number of other rows); with every row ignored the loss is
// NaN, as in PyTorch. Returns a 0-d tensor of the logits' dtype.
//
// The fused op never builds a one-hot matrix or a softmax tensor: the forward keeps one logsumexp per row
// (float64, N values) and the backward recomputes the softmax row by row from the logits and those:
//   dlogits[r] = (softmax(logits[r]) - onehot(targets[r])) · dloss / count,   0 for ignored rows.
// cross_entropy_reference is the same loss composed from primitives (log_softmax, index_select, gather,
// mean), for the tests.
// NOTE: deterministic for any thread count: rows are independent and the row losses are added in row
// order on one thread.
#pragma once

#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace hydra::nn {

constexpr int64_t kIgnoreIndex = -100;  // PyTorch's default ignore_index

// Errors (hydra::Error, naming "cross_entropy"): targets whose shape is not the logits' without the last
// dim (both shapes printed), a target outside [0, V) that is not ignore_index (its value, its position
// and V), logits that are not float, targets that are not int32/int64.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = kIgnoreIndex);
Tensor cross_entropy_reference(const Tensor& logits, const Tensor& targets, int64_t ignore_index = kIgnoreIndex);

// The targets as int64 values, each checked to be a class in [0, V) or ignore_index; the error names `op`,
// the first bad target, its position and V. Shared with the fused losses (nn/linear_cross_entropy.h).
std::vector<int64_t> checked_class_targets(const char* op, const Tensor& targets, int64_t V, int64_t ignore_index);

}  // namespace hydra::nn

namespace hydra {

// The loss is also hydra::cross_entropy, beside the other differentiable ops (PyTorch's
// torch.nn.functional.cross_entropy).
using nn::cross_entropy;
using nn::kIgnoreIndex;

}  // namespace hydra
