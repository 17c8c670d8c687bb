// GEMM for products with few rows (op(A) = A with M <= kSmallGemmRows): decoding's one-token steps and
// speculative decoding's few-position verification. tensor/gemm.cpp sends such products here.
//
// Each element of C is computed on its own, in a fixed order that depends only on K:
//   C = A Bᵀ (trans_b):  c_in = Σ_k a_ik b_nk over 64 lanes (k into lane k % 64, fused multiply-adds in
//                        ascending k), the lanes then added pairwise (32, 16, 8, 4, 2, 1);
//   C = A B:             c_in = Σ_k a_ik b_kn, one fused multiply-add per k in ascending k;
// then c = alpha · sum + beta · c (c is not read when beta is 0). So row i of C has the same bits
// whatever M is, and whichever columns a task computes: the logits of γ positions scored at once
// equal the logits of the same positions scored one at a time (hydra/generate.h relies on it), and
// zero terms appended to a sum (masked keys in attention) change nothing. It also skips BLAS's packing
// of B, which dominates one-row products (measured: bench/README.md).
#pragma once

#include <cstdint>

namespace hydra::kernels {

constexpr int64_t kSmallGemmRows = 16;

// C (M×N) = alpha · A (M×K) · op(B) + beta · C, op(B) = Bᵀ (B stored N×K) when trans_b, else B (K×N).
// Row-major with row strides lda, ldb, ldc. On the calling thread.
template <class T>
void small_gemm(bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace hydra::kernels
