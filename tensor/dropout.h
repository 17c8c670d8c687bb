// The dropout kernel (no autograd): a mask drawn from a counter-based Generator, applied in one pass.
//
//   out[i] = x[i] * (keep(i) ? 1/(1-p) : 0),   keep(i) = (uniform draw for element i) >= p
//
// Element i is x's i-th element in row-major order, and its draw is gen.bits(i, 0) at the generator's
// current offset, so the mask depends on (seed, offset, shape) only, never on the thread count or the
// layout of x. The generator is NOT advanced here: the differentiable op (autograd/ops_dropout.h)
// advances it once per call and re-applies the same mask in its backward from a saved copy, so no mask
// tensor is ever stored. float32 and float64; any layout (a non-dense x is made dense first).
#pragma once

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace hydra::kernels {

// p in [0, 1). Returns a new dense tensor of x's shape and dtype.
Tensor dropout(const Tensor& x, double p, const Generator& gen);

}  // namespace hydra::kernels
