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

#include <algorithm>
#include <cstdint>
#include <span>

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

// One product of a group that shares its left operand: C (M×N, row stride ldc) = A · Bᵀ, with B stored
// N×K (row stride ldb), as a Linear's [out, in] weight is.
template <class T>
struct SharedInputProduct {
  const T* B;
  int64_t ldb, N;
  T* C;
  int64_t ldc;
};

// Every product of `products` with the one A (M×K, row stride lda), each with the bits gemm(false, true,
// M, N, K, 1, A, lda, B, ldb, 0, C, ldc) gives it. With few rows (decoding's q/k/v projections, or w1
// and w3) the column tiles of all of them run as one parallel region: on 2 cores each region costs
// ~2.5 µs of a thread waiting for the other to start (bench/README.md, 'Decoding: one region for the
// products of one input'). With more rows, one gemm per product.
template <class T>
void gemm_shared_input(int64_t M, int64_t K, const T* A, int64_t lda, std::span<const SharedInputProduct<T>> products);

// Products tiled as one stacked matrix (gemm_shared_input, gemm_bf16_shared_input): calls
// part(product, lo, hi) for the columns [lo, hi) of each product that the stacked columns [c0, c1) cover.
template <class Product, class Part>
void for_each_stacked_part(std::span<const Product> products, int64_t c0, int64_t c1, Part&& part) {
  int64_t first = 0;  // the first stacked column of the product
  for (const Product& p : products) {
    const int64_t lo = std::max(c0, first) - first, hi = std::min(c1, first + p.N) - first;
    if (lo < hi) part(p, lo, hi);
    first += p.N;
  }
}

// False when the loaded OpenBLAS cannot be called from several threads at once (then GEMMs run their
// tiles on one thread). The batched matmul asks before parallelising over matrices.
bool gemm_runs_in_parallel();

}  // namespace hydra::kernels
