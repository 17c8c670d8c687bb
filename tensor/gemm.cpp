#include "tensor/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <thread>

#include "tensor/gemm_small.h"
#include "tensor/parallel.h"

namespace hydra::kernels {

namespace {

void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
               int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha,
              A, static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
}

void blas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t M, int64_t N, int64_t K, double alpha,
               const double* A, int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha,
              A, static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
}

// Whether several threads may call BLAS at once. True for the pthreads build we link (it locks its
// buffer pool); Debian's serial build has no locks and gave wrong results under concurrent calls, and
// an OpenMP build called from TBB threads gave run-to-run differences. With either of those loaded
// (someone changed the link), every GEMM runs on one thread: slower, still correct.
bool blas_is_thread_safe() {
  static const bool safe = [] {
    openblas_set_num_threads(1);  // BLAS itself never starts threads: TBB owns them
    return openblas_get_parallel() == 1;
  }();
  return safe;
}

// The tiling rule (measured, bench/README.md): at most max_tiles() tiles of at least ~4 MFLOP each,
// cut along the longer side of C in multiples of 64 (so the operand packed again per tile is the
// smaller one). It looks only at M, N, K and the machine, never at the thread limit, so every element
// of C comes from the same BLAS call whatever the number of threads.
struct Tiling {
  int64_t row_block, col_block;  // tile size; a tile is rows [r, r+row_block) × cols [c, c+col_block)
  int64_t count(int64_t M, int64_t N) const {
    return ((M + row_block - 1) / row_block) * ((N + col_block - 1) / col_block);
  }
};

constexpr double kFlopsPerTile = 4e6;
// NOTE: both tile counts use the *hardware* core count, a constant of the machine, never the thread
// limit in force.
int64_t hardware_cores() {
  static const int64_t v = std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()));
  return v;
}

// One tile per core. Every tile packs its share of one operand and all of the other again, so fewer
// tiles pack less: on 2 cores, 2 tiles beat 4 by 1-11% on every layer shape measured, and 4 beat 8
// (bench/README.md, 'Threading policy').
int64_t max_tiles() { return std::clamp<int64_t>(hardware_cores(), 2, 16); }

// Few-row products pack nothing; they keep twice the cores, the count their tiling was measured with.
int64_t max_small_tiles() { return std::clamp<int64_t>(2 * hardware_cores(), 2, 16); }

int64_t round_up_64(int64_t v) { return (v + 63) / 64 * 64; }

// Few-row products (decoding) are bound by reading B, not by arithmetic: one row does 2 flops per
// 4-byte weight. So they are cut by the bytes of B instead of flops: column tiles of ~128 KiB of B each,
// at most max_small_tiles(), so that every core streams its own part of the weights (one core alone
// cannot saturate the memory bus). At 256 KiB, tiny's 256×256 projections (exactly 256 KiB) ran on one
// core: 128 KiB made its decoding 3-7% faster in each of 4 alternated pairs (bench/README.md); larger
// models' matrices hit the tile cap either way. The few-row kernel computes every element on its own,
// so column tiles change no bits.
constexpr double kSmallTileBytes = 128.0 * 1024.0;

template <class T>
Tiling choose_small_tiling(int64_t M, int64_t N, int64_t K) {
  const double bytes = static_cast<double>(N) * static_cast<double>(K) * sizeof(T);
  const int64_t tiles = std::min<int64_t>(max_small_tiles(), static_cast<int64_t>(bytes / kSmallTileBytes));
  if (tiles < 2) return {std::max<int64_t>(M, 1), std::max<int64_t>(N, 1)};
  // Multiples of 16 columns keep the kernel's 4-column blocks whole.
  const int64_t per_tile = (N + tiles - 1) / tiles;
  return {std::max<int64_t>(M, 1), (per_tile + 15) / 16 * 16};
}

Tiling choose_tiling(int64_t M, int64_t N, int64_t K) {
  const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  const int64_t tiles = std::min<int64_t>(max_tiles(), static_cast<int64_t>(flops / kFlopsPerTile));
  if (tiles < 2) return {std::max<int64_t>(M, 1), std::max<int64_t>(N, 1)};
  if (M >= N) return {std::max<int64_t>(64, round_up_64((M + tiles - 1) / tiles)), std::max<int64_t>(N, 1)};
  return {std::max<int64_t>(M, 1), std::max<int64_t>(64, round_up_64((N + tiles - 1) / tiles))};
}

// Pointer to element (r, c) of op(X), for a stored row-major X with row stride ld.
template <class T>
const T* at(const T* X, bool trans, int64_t ld, int64_t r, int64_t c) {
  return trans ? X + c * ld + r : X + r * ld + c;
}

}  // namespace

template <class T>
void gemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
                 const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (!trans_a && M <= kSmallGemmRows) {  // decoding's few-row products: row-independent bits, no packing
    small_gemm(trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  blas_is_thread_safe();  // first call sets BLAS to one thread
  blas_gemm(trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb,
            beta, C, ldc);
}

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  const Tiling tiling =
      !trans_a && M <= kSmallGemmRows ? choose_small_tiling<T>(M, N, K) : choose_tiling(M, N, K);
  const int64_t col_tiles = (N + tiling.col_block - 1) / tiling.col_block;
  auto run_tile = [&](int64_t t) {
    const int64_t r0 = (t / col_tiles) * tiling.row_block, c0 = (t % col_tiles) * tiling.col_block;
    const int64_t rows = std::min(tiling.row_block, M - r0), cols = std::min(tiling.col_block, N - c0);
    gemm_serial(trans_a, trans_b, rows, cols, K, alpha, at(A, trans_a, lda, r0, 0), lda, at(B, trans_b, ldb, 0, c0), ldb,
                beta, C + r0 * ldc + c0, ldc);
  };
  const int64_t n_tiles = tiling.count(M, N);
  if (!blas_is_thread_safe()) {
    for (int64_t t = 0; t < n_tiles; ++t) run_tile(t);  // same tiles, so the same results, one thread
    return;
  }
  parallel_for(0, n_tiles, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) run_tile(t);
  });
}

template <class T>
void gemm_shared_input(int64_t M, int64_t K, const T* A, int64_t lda, std::span<const SharedInputProduct<T>> products) {
  if (M > kSmallGemmRows || !blas_is_thread_safe()) {
    for (const SharedInputProduct<T>& p : products)
      gemm(false, true, M, p.N, K, T(1), A, lda, p.B, p.ldb, T(0), p.C, p.ldc);
    return;
  }
  // The products are tiled as one matrix of all their rows would be (a tile may span two of them); the
  // few-row kernel computes every element on its own, so neither the tiles nor the grouping change a bit.
  int64_t total_n = 0;
  for (const SharedInputProduct<T>& p : products) total_n += p.N;
  const int64_t block = choose_small_tiling<T>(M, total_n, K).col_block;
  parallel_for(0, (total_n + block - 1) / block, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t)
      for_each_stacked_part(products, t * block, std::min(total_n, (t + 1) * block),
                            [&](const SharedInputProduct<T>& p, int64_t c0, int64_t c1) {
                              small_gemm(true, M, c1 - c0, K, T(1), A, lda, p.B + c0 * p.ldb, p.ldb, T(0), p.C + c0,
                                         p.ldc);
                            });
  });
}

bool gemm_runs_in_parallel() { return blas_is_thread_safe(); }

template void gemm<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t,
                          float, float*, int64_t);
template void gemm<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t, const double*,
                           int64_t, double, double*, int64_t);
template void gemm_shared_input<float>(int64_t, int64_t, const float*, int64_t,
                                       std::span<const SharedInputProduct<float>>);
template void gemm_shared_input<double>(int64_t, int64_t, const double*, int64_t,
                                        std::span<const SharedInputProduct<double>>);
template void gemm_serial<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
                                 int64_t, float, float*, int64_t);
template void gemm_serial<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*, int64_t,
                                  const double*, int64_t, double, double*, int64_t);

}  // namespace hydra::kernels
