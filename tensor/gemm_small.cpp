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

// Lanes of a dot product: four 16-float vectors, so four independent chains of fused multiply-adds
// (one chain waits on its own latency) while one row of B is read front to back.
constexpr int kLanes = 64;
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

// Rows of B ahead of the one being read whose cache lines are requested while it is read: the rows
// are a few KB, over before the hardware prefetcher has ramped up on each. Two rows ahead streamed
// gpt2's decoding weights 2-12% faster than none, in every one of five runs (in one process,
// bench/README.md); it changes no value.
constexpr int64_t kPrefetchRows = 2;

// Requests the cache lines of b[k, k + kLanes) (a row of B kPrefetchRows ahead).
template <class T>
void prefetch_lanes(const T* b, int64_t k) {
  for (size_t byte = 0; byte < kLanes * sizeof(T); byte += 64)
    __builtin_prefetch(reinterpret_cast<const char*>(b + k) + byte);
}

// c = alpha · (a · b) + beta · c for one row a of A and one stored row b of B (a column of Bᵀ); `ahead`
// is the row of B to prefetch.
template <class T>
void dot_column(const T* a, const T* b, const T* ahead, int64_t K, T alpha, T beta, T* c) {
  T acc[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= K; k += kLanes) {
    prefetch_lanes(ahead, k);
    for (int l = 0; l < kLanes; ++l) acc[l] = std::fma(a[k + l], b[k + l], acc[l]);
  }
  for (int l = 0; k < K; ++k, ++l) acc[l] = std::fma(a[k], b[k], acc[l]);
  store(c, reduce_lanes(acc), alpha, beta);
}

// The same sums for rows i..i+3 of A and one row b of B: B's values are loaded once for four rows (the
// form for several rows, where the loads would otherwise bound the time). Each sum is formed exactly as
// dot_column forms it, so a row's bits do not depend on whether it went through here.
template <class T>
void dot_column_4_rows(const T* a, int64_t lda, const T* b, const T* ahead, int64_t K, T alpha, T beta, T* c,
                       int64_t ldc) {
  const T *a0 = a, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
  T acc[4][kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= K; k += kLanes) {
    prefetch_lanes(ahead, k);
    for (int l = 0; l < kLanes; ++l) {
      const T bk = b[k + l];
      acc[0][l] = std::fma(a0[k + l], bk, acc[0][l]);
      acc[1][l] = std::fma(a1[k + l], bk, acc[1][l]);
      acc[2][l] = std::fma(a2[k + l], bk, acc[2][l]);
      acc[3][l] = std::fma(a3[k + l], bk, acc[3][l]);
    }
  }
  for (int l = 0; k < K; ++k, ++l) {
    acc[0][l] = std::fma(a0[k], b[k], acc[0][l]);
    acc[1][l] = std::fma(a1[k], b[k], acc[1][l]);
    acc[2][l] = std::fma(a2[k], b[k], acc[2][l]);
    acc[3][l] = std::fma(a3[k], b[k], acc[3][l]);
  }
  for (int r = 0; r < 4; ++r) store(c + r * ldc, reduce_lanes(acc[r]), alpha, beta);
}

template <class T>
void gemm_nt(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const T* B, int64_t ldb, T beta,
             T* C, int64_t ldc) {
  // Columns outside, rows inside: each row of B is read from memory once, as one forward stream (which
  // the hardware prefetcher follows best: measured, bench/README.md), and reused from cache for every
  // row of A.
  for (int64_t n = 0; n < N; ++n) {
    const T* b = B + n * ldb;
    // The last rows prefetch themselves again (a pointer past B's end would be undefined behaviour).
    const T* ahead = n + kPrefetchRows < N ? b + kPrefetchRows * ldb : b;
    int64_t i = 0;
    for (; i + 4 <= M; i += 4) dot_column_4_rows(A + i * lda, lda, b, ahead, K, alpha, beta, C + i * ldc + n, ldc);
    for (; i < M; ++i) dot_column(A + i * lda, b, ahead, K, alpha, beta, C + i * ldc + n);
  }
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
