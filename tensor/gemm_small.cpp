// Few-row GEMM with row-independent results (contract in gemm_small.h).
//
// Written as plain loops over fixed-size lane arrays with std::fma, which GCC turns into vector FMAs
// at -O3 -march=native (as tensor/vec_math.h does): vectorised or not, every lane performs the same
// IEEE operations in the same order, so the result never depends on how the compiler or the column
// blocking arranged the work.
#include "tensor/gemm_small.h"

#include <algorithm>
#include <cmath>

namespace hydra::kernels {

namespace {

constexpr int kLanes = 16;
// Columns of B computed together: A's row is loaded once for four dot products.
constexpr int kColumns = 4;
// Columns of C accumulated together in the A·B form (a stack buffer of this many sums).
constexpr int64_t kAxpyChunk = 256;

template <class T>
T reduce_lanes(T* acc) {
  for (int width = kLanes / 2; width >= 1; width /= 2)
    for (int l = 0; l < width; ++l) acc[l] += acc[l + width];
  return acc[0];
}

template <class T>
void store(T* c, T sum, T alpha, T beta) {
  *c = beta == T(0) ? alpha * sum : alpha * sum + beta * *c;
}

// c_in for kColumns = 4 consecutive columns n0.. of Bᵀ (rows n0.. of the stored B).
template <class T>
void dot_columns(const T* a, const T* b, int64_t ldb, int64_t K, T alpha, T beta, T* c) {
  static_assert(kColumns == 4);
  const T *b0 = b, *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
  T acc[kColumns][kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= K; k += kLanes) {
    // The next block's rows of B (kColumns rows on), one cache line each per step: with rows of a few
    // hundred values a block is over before the hardware prefetcher has ramped up (measured:
    // bench/README.md, 'Decoding speed').
    for (int j = 0; j < kColumns; ++j) __builtin_prefetch(b0 + (kColumns + j) * ldb + k);
    for (int l = 0; l < kLanes; ++l) {
      acc[0][l] = std::fma(a[k + l], b0[k + l], acc[0][l]);
      acc[1][l] = std::fma(a[k + l], b1[k + l], acc[1][l]);
      acc[2][l] = std::fma(a[k + l], b2[k + l], acc[2][l]);
      acc[3][l] = std::fma(a[k + l], b3[k + l], acc[3][l]);
    }
  }
  for (int l = 0; k < K; ++k, ++l) {
    acc[0][l] = std::fma(a[k], b0[k], acc[0][l]);
    acc[1][l] = std::fma(a[k], b1[k], acc[1][l]);
    acc[2][l] = std::fma(a[k], b2[k], acc[2][l]);
    acc[3][l] = std::fma(a[k], b3[k], acc[3][l]);
  }
  for (int j = 0; j < kColumns; ++j) store(c + j, reduce_lanes(acc[j]), alpha, beta);
}

// The same sum for one column.
template <class T>
void dot_column(const T* a, const T* b, int64_t K, T alpha, T beta, T* c) {
  T acc[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= K; k += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] = std::fma(a[k + l], b[k + l], acc[l]);
  for (int l = 0; k < K; ++k, ++l) acc[l] = std::fma(a[k], b[k], acc[l]);
  store(c, reduce_lanes(acc), alpha, beta);
}

template <class T>
void gemm_nt(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B, int64_t ldb, T beta,
             T* C, int64_t ldc) {
  // Columns outside, rows inside: a block of B's rows is read from memory once and reused from cache
  // for every row of A.
  int64_t n = 0;
  for (; n + kColumns <= N; n += kColumns)
    for (int64_t i = 0; i < M; ++i) dot_columns(A + i * lda, B + n * ldb, ldb, K, alpha, beta, C + i * ldc + n);
  for (; n < N; ++n)
    for (int64_t i = 0; i < M; ++i) dot_column(A + i * lda, B + n * ldb, K, alpha, beta, C + i * ldc + n);
}

template <class T>
void gemm_nn(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B, int64_t ldb, T beta,
             T* C, int64_t ldc) {
  T acc[kAxpyChunk];
  for (int64_t n0 = 0; n0 < N; n0 += kAxpyChunk) {
    const int64_t width = std::min(kAxpyChunk, N - n0);
    for (int64_t i = 0; i < M; ++i) {
      std::fill(acc, acc + width, T(0));
      const T* a = A + i * lda;
      for (int64_t k = 0; k < K; ++k) {
        const T* b = B + k * ldb + n0;
        const T aik = a[k];
        for (int64_t e = 0; e < width; ++e) acc[e] = std::fma(aik, b[e], acc[e]);
      }
      T* c = C + i * ldc + n0;
      for (int64_t e = 0; e < width; ++e) store(c + e, acc[e], alpha, beta);
    }
  }
}

}  // namespace

template <class T>
void small_gemm(bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B,
                int64_t ldb, T beta, T* C, int64_t ldc) {
  if (trans_b)
    gemm_nt(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    gemm_nn(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template void small_gemm<float>(bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                                float, float*, int64_t);
template void small_gemm<double>(bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                                 int64_t, double, double*, int64_t);

}  // namespace hydra::kernels
