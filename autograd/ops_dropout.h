// Differentiable dropout (inverted, as torch.nn.functional.dropout in training mode):
//
//   out = x * mask / (1 - p),   mask[i] ~ Bernoulli(1 - p), drawn from `gen`
//
// x (...) float -> the same shape. The mask is a function of the generator's (seed, offset) and x's
// shape only (tensor/dropout.h), so the result is the same at any thread count; each call advances
// `gen` by x.numel(). Backward: dx = dout * mask / (1 - p), the same mask re-drawn from a saved copy of
// the generator (nothing the size of x is saved). p = 0 returns x itself and draws nothing.
// Not here: deciding whether dropout is active (the caller passes no generator in evaluation).
#pragma once

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace hydra {

// p in [0, 1) (an error names p otherwise).
Tensor dropout(const Tensor& x, double p, Generator& gen);

}  // namespace hydra
