// GEMM: C = alpha * op(A) * op(B) + beta * C on row-major matrices, through OpenBLAS set to one thread.
//
// op(X) is X or Xᵀ: a transposed view is passed to BLAS as a transpose flag with its leading dimension,
// never copied. Large products are cut into tiles of C that run as TBB tasks (tensor/parallel.h explains
// why TBB, not OpenBLAS, owns the threads), by flops; few-row products (decoding) into column tiles by
// the bytes of B they read, so that every core streams its own share of the weights. The tiling depends
// only on M, N, K and the machine's core count (not the thread limit), so the same product gives
// bit-identical results for any thread count.
// Products with op(A) = A and at most kSmallGemmRows rows skip BLAS for Hydra's own kernel
// (tensor/gemm_small.h), whose row i has the same bits whatever the number of rows.
//
// Naming: no autograd here, raw pointers in and out (Tensor level: kernels::matmul_raw, hydra::matmul).
#pragma once

#include <cstdint>

namespace hydra::kernels {

// A is op(A) = M×K, B is op(B) = K×N, C is M×N; lda/ldb/ldc are the row strides of the stored matrices.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// The same product on the calling thread only (for callers already inside a parallel region, such as
// a batched matmul that parallelises over the batch).
template <class T>
void gemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                 const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// False when the loaded OpenBLAS cannot be called from several threads at once (then GEMMs run their
// tiles on one thread). The batched matmul asks before parallelising over matrices.
bool gemm_runs_in_parallel();

}  // namespace hydra::kernels
