// Fused cross-entropy over logits: never builds a one-hot matrix or a separate softmax tensor.
#pragma once

#include "tensor/tensor.h"

namespace hydra {

constexpr int64_t kIgnoreIndex = -100;  // PyTorch's default ignore_index

// logits (..., V) float, targets (...) int32/int64 with values in [0, V) or ignore_index.
// Returns the mean over non-ignored positions of logsumexp(logits) - logits[target], as a 0-d tensor
// (NaN when every target is ignored, as PyTorch). Backward: (softmax - onehot) / count, row by row,
// recomputing softmax from the logits and the saved per-row logsumexp; ignored rows get 0.
// Errors (hydra::Error) for a targets shape that is not logits' shape without its last dim, a target
// outside [0, V) that is not ignore_index (naming the value, its position and V), and wrong dtypes.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = kIgnoreIndex);

}  // namespace hydra
