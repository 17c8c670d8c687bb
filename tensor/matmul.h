// Raw (no autograd) matrix products over Tensors, on top of tensor/gemm.h.
//
// Naming: no autograd here; `_raw` returns a new tensor, `_into` writes into dst (differentiable ops: autograd/).
#pragma once

#include "tensor/tensor.h"

namespace hydra::kernels {

// (M, K) @ (K, N), or batched (..., M, K) @ (..., K, N) with equal batch dims. Each matrix operand may
// be dense or a transposed view (passed to BLAS as a flag); any other layout is copied first.
// Shapes are checked with messages that print both.
Tensor matmul_raw(const Tensor& a, const Tensor& b);

}  // namespace hydra::kernels
