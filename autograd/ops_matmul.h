// Matrix products through OpenBLAS GEMM. Transposed views are passed as GEMM transpose flags, never
// copied (tensor/gemm.h).
#pragma once

#include "tensor/tensor.h"

namespace hydra {

// (M, K) @ (K, N) -> (M, N); or batched: (..., M, K) @ (..., K, N) -> (..., M, N) with equal batch
// dims (no implicit broadcasting).
Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace hydra
