// float32 × bfloat16 products on two paths with the same bits (the contract is in gemm_bf16.h).
//
// GCC 12's AVX-512 intrinsics give their "undefined" operands their own value, which -Wuninitialized
// reports once they are inlined at -O3: a warning about the header, silenced for it alone (the pragma
// must precede the header's first inclusion, so it comes first).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "tensor/gemm_bf16.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tensor/error.h"
#include "tensor/gemm.h"
#include "tensor/parallel.h"

namespace hydra::kernels {

namespace {

constexpr int kLanes = 16;               // float32 sums in one 512-bit register
constexpr int kRegs = 4;                 // registers of sums per element: 64 lanes, four independent chains
constexpr int64_t kChunk = 2 * kLanes;   // bfloat16 values one vdpbf16ps consumes per operand
constexpr int kRows = 4;                 // register block: 4 rows of A × one weight row, 16 sums in flight

int64_t padded(int64_t K) { return (K + kChunk - 1) / kChunk * kChunk; }

// ---- the arithmetic both paths share ----

// A bfloat16 below the normal range reads as zero (vdpbf16ps treats its inputs so), sign kept.
uint16_t zero_if_subnormal(uint16_t b) { return (b & 0x7f80u) == 0 ? static_cast<uint16_t>(b & 0x8000u) : b; }

// The 64 sums (register r holds lanes 16r..16r+15) added pairwise: 32, 16, 8, 4, 2, 1.
float reduce_lanes(float (*acc)[kLanes]) {
  for (int l = 0; l < kLanes; ++l) {
    acc[0][l] += acc[2][l];
    acc[1][l] += acc[3][l];
  }
  for (int l = 0; l < kLanes; ++l) acc[0][l] += acc[1][l];
  for (int width = kLanes / 2; width >= 1; width /= 2)
    for (int l = 0; l < width; ++l) acc[0][l] += acc[0][l + width];
  return acc[0][0];
}

// Rows of A rounded to bfloat16 (subnormals read as zero), each zero-padded to padded(K) values.
std::vector<uint16_t> rounded_rows(int64_t M, int64_t K, const float* A, int64_t lda) {
  const int64_t Kp = padded(K);
  std::vector<uint16_t> out(static_cast<size_t>(M * Kp), 0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k)
      out[static_cast<size_t>(i * Kp + k)] = zero_if_subnormal(float_to_bfloat16_bits(A[i * lda + k]));
  return out;
}

// ---- portable path: plain float code in the contract's order ----
//
// Written as loops over the 16 lanes on whole 32-bit words (one pair of bfloat16 values each) with bit
// operations and std::fma only, so that GCC's loop vectorizer turns each into a few vector
// instructions (AVX2 or whatever the target has); every lane still performs the same IEEE operations
// in the same order.

// While one lives, the float unit runs in flush-to-zero and denormals-are-zero mode (MXCSR bits 15 and
// 6): subnormal inputs read as zero and results that are tiny after rounding become zero, sign kept.
// That is the rule vdpbf16ps follows whatever MXCSR says. Flushing by hand after each addition (what
// this path did before) tested the result after it was rounded to a subnormal, which keeps a sum like
// 2^-126 - 0.75·2^-150 as 2^-126 where the instruction gives 0 (tests/test_bf16.cpp has the case), and
// cost three instructions per addition.
class FlushDenormals {
 public:
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero); }
  ~FlushDenormals() { _mm_setcsr(saved_); }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;

 private:
  static constexpr unsigned kFlushToZero = 1u << 15, kDenormalsAreZero = 1u << 6;
  unsigned saved_;
};

float float_of(uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}
// The odd (high) and even (low) bfloat16 of a pair as float32 bits.
uint32_t odd_raw(uint32_t pair) { return pair & 0xffff0000u; }
uint32_t even_raw(uint32_t pair) { return pair << 16; }

// One chunk (32 values: 16 pairs) of a row of A against the same chunk of a weight row, into acc[lane],
// under FlushDenormals. Each product of two bfloat16 values is exact in float32 when it is normal, and
// std::fma never rounds it on its own, so each addition rounds once, as the instruction's does.
// Inlined into a loop that names each of the four registers of sums, so that GCC keeps them in vector
// registers (called once per chunk, they went through memory).
//
// How the pairs are loaded depends on the vector width, because GCC's code for the two forms does. With
// AVX-512, a 64-byte copy of the chunk into local arrays is one register each, and that form decoded
// small 0-16% faster (alternated runs on a Zen 5). On AVX2, GCC made the copy of 16-byte stores that
// the 32-byte loads after it waited on (3.7x slower): there each pair is read straight from the row.
[[gnu::always_inline]] inline void chunk_portable(const uint16_t* a, const uint16_t* w, float* acc) {
#if defined(__AVX512F__)
  uint32_t a_pairs[kLanes], w_pairs[kLanes];
  std::memcpy(a_pairs, a, sizeof(a_pairs));
  std::memcpy(w_pairs, w, sizeof(w_pairs));
#endif
  for (int l = 0; l < kLanes; ++l) {
#if defined(__AVX512F__)
    const uint32_t ap = a_pairs[l], wp = w_pairs[l];
#else
    uint32_t ap, wp;
    std::memcpy(&ap, a + 2 * l, sizeof(ap));
    std::memcpy(&wp, w + 2 * l, sizeof(wp));
#endif
    const float odd = std::fma(float_of(odd_raw(ap)), float_of(odd_raw(wp)), acc[l]);
    acc[l] = std::fma(float_of(even_raw(ap)), float_of(even_raw(wp)), odd);
  }
}

// The contract's sum for row a against weight row w: chunk c goes to register c % 4. `ahead` is the
// weight row to prefetch, every cache line of it, as on the AVX-512 path.
float dot_portable(const uint16_t* a, const uint16_t* w, const uint16_t* ahead, int64_t K) {
  float acc[kRegs][kLanes] = {};
  {
    // Only the sums flush: the pairwise reduction below adds in the ordinary mode, as the AVX-512
    // path's reduce_lanes_avx512 does.
    const FlushDenormals ftz;
    const int64_t full = K / kChunk * kChunk;
    int64_t k = 0;
    for (; k + kRegs * kChunk <= full; k += kRegs * kChunk) {
      for (int q = 0; q < kRegs; ++q) __builtin_prefetch(ahead + k + q * kChunk);
      chunk_portable(a + k, w + k, acc[0]);
      chunk_portable(a + k + kChunk, w + k + kChunk, acc[1]);
      chunk_portable(a + k + 2 * kChunk, w + k + 2 * kChunk, acc[2]);
      chunk_portable(a + k + 3 * kChunk, w + k + 3 * kChunk, acc[3]);
    }
    for (; k < full; k += kChunk) chunk_portable(a + k, w + k, acc[(k / kChunk) % kRegs]);
    if (full < K) {  // the weight row's last K - full values, zero-padded as the row of A is
      uint16_t tail[kChunk] = {};
      std::copy(w + full, w + K, tail);
      chunk_portable(a + full, tail, acc[(full / kChunk) % kRegs]);
    }
  }
  return reduce_lanes(acc);
}

void tile_portable(int64_t r0, int64_t r1, int64_t c0, int64_t c1, int64_t K, const uint16_t* Abf,
                   const bfloat16* W, int64_t ldw, float* C, int64_t ldc) {
  const int64_t Kp = padded(K);
  // Columns outside, rows inside, as on the AVX-512 path.
  for (int64_t n = c0; n < c1; ++n) {
    const uint16_t* w = &W[n * ldw].bits;
    const uint16_t* ahead = n + 1 < c1 ? w + ldw : w;  // the tile's last row prefetches itself
    for (int64_t i = r0; i < r1; ++i) C[i * ldc + n] = dot_portable(Abf + i * Kp, w, ahead, K);
  }
}

// ---- avx512_bf16 path ----

#define HYDRA_AVX512_BF16 __attribute__((target("avx512bf16,avx512f,avx512bw,avx512vl")))

// reduce_lanes on registers: the same pairwise additions (register 0 += 2, 1 += 3, 0 += 1, then lane
// l += lane l + 8, + 4, + 2, + 1), so the same bits, without going through memory (with K in the
// hundreds the reduction would otherwise cost as much as the sums).
HYDRA_AVX512_BF16 inline float reduce_lanes_avx512(const __m512* acc) {
  const __m512 v = _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3]));
  const __m256 high8 = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
  const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), high8);
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

// RB rows of A × one weight row, every sum in a register; the same per-element order as dot_portable
// (vdpbf16ps does the odd then the even product of each pair, flushing subnormals). Four registers of
// sums per row make four independent chains of vdpbf16ps: with one, each waited for the last.
template <int RB>
HYDRA_AVX512_BF16 void block_avx512(const uint16_t* a, int64_t Kp, const uint16_t* w, const uint16_t* ahead, int64_t K,
                                    float* c, int64_t ldc) {
  __m512 acc[RB][kRegs];
  for (int r = 0; r < RB; ++r)
    for (int q = 0; q < kRegs; ++q) acc[r][q] = _mm512_setzero_ps();
  const int64_t full = K / kChunk * kChunk;
  int64_t k = 0;
  for (; k + kRegs * kChunk <= full; k += kRegs * kChunk) {
    // The next weight row (`ahead`), every cache line of it: with rows of a few hundred values a row is
    // over before the hardware prefetcher has ramped up (measured: bench/README.md, bf16 decoding).
    for (int q = 0; q < kRegs; ++q) _mm_prefetch(reinterpret_cast<const char*>(ahead + k + q * kChunk), _MM_HINT_T0);
    for (int q = 0; q < kRegs; ++q) {
      const __m512i wv = _mm512_loadu_si512(w + k + q * kChunk);
      for (int r = 0; r < RB; ++r) {
        const __m512i av = _mm512_loadu_si512(a + r * Kp + k + q * kChunk);
        acc[r][q] = _mm512_dpbf16_ps(acc[r][q], (__m512bh)av, (__m512bh)wv);
      }
    }
  }
  for (; k < full; k += kChunk) {  // the last full chunks, fewer than four
    const int q = static_cast<int>((k / kChunk) % kRegs);
    const __m512i wv = _mm512_loadu_si512(w + k);
    for (int r = 0; r < RB; ++r)
      acc[r][q] = _mm512_dpbf16_ps(acc[r][q], (__m512bh)_mm512_loadu_si512(a + r * Kp + k), (__m512bh)wv);
  }
  if (full < K) {  // the weight row's last K - full values; the rest of the chunk reads as zero
    const int q = static_cast<int>((full / kChunk) % kRegs);
    const __mmask32 mask = static_cast<__mmask32>((uint64_t{1} << (K - full)) - 1);
    const __m512i wv = _mm512_maskz_loadu_epi16(mask, w + full);
    for (int r = 0; r < RB; ++r)
      acc[r][q] = _mm512_dpbf16_ps(acc[r][q], (__m512bh)_mm512_loadu_si512(a + r * Kp + full), (__m512bh)wv);
  }
  for (int r = 0; r < RB; ++r) c[r * ldc] = reduce_lanes_avx512(acc[r]);
}

HYDRA_AVX512_BF16 void tile_avx512(int64_t r0, int64_t r1, int64_t c0, int64_t c1, int64_t K, const uint16_t* Abf,
                                   const bfloat16* W, int64_t ldw, float* C, int64_t ldc) {
  const int64_t Kp = padded(K);
  // Columns outside, rows inside: a weight row is read from memory once, as one forward stream, and
  // reused from cache for every row of A.
  for (int64_t n = c0; n < c1; ++n) {
    const uint16_t* w = &W[n * ldw].bits;
    // The tile's last row prefetches itself again (a pointer past W's end would be undefined behaviour).
    const uint16_t* ahead = n + 1 < c1 ? w + ldw : w;
    int64_t i = r0;
    for (; i + kRows <= r1; i += kRows) block_avx512<kRows>(Abf + i * Kp, Kp, w, ahead, K, C + i * ldc + n, ldc);
    for (; i < r1; ++i) block_avx512<1>(Abf + i * Kp, Kp, w, ahead, K, C + i * ldc + n, ldc);
  }
}

// ---- choosing the path and the tiles ----

Bf16Path chosen_path() {
  const char* env = std::getenv("HYDRA_SIMD");
  const std::string want = env ? env : "auto";
  HYDRA_CHECK(want == "auto" || want == "portable" || want.empty(), "HYDRA_SIMD='", want,
              "' is not understood (expected portable or auto)");
  return want == "portable" || !cpu_has_avx512_bf16() ? Bf16Path::Portable : Bf16Path::Avx512Bf16;
}

// Tiles split the columns by weight bytes (a tile reads ~256 KiB of weights, at most twice the
// hardware cores' count of column tiles) and, past the few-row case, the rows in blocks of 64. Each
// element is computed on its own, so the tiling changes which thread computes it, never its bits; it
// still depends on the shapes and the machine's core count only, as tensor/gemm.cpp's does.
constexpr int64_t kTileWeightBytes = 256 * 1024;
constexpr int64_t kRowBlock = 64;

int64_t max_column_tiles() {
  static const int64_t v = std::clamp<int64_t>(2 * static_cast<int64_t>(std::thread::hardware_concurrency()), 2, 16);
  return v;
}

}  // namespace

bool cpu_has_avx512_bf16() {
  static const bool has = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return has;
}

Bf16Path bf16_path() {
  static const Bf16Path path = chosen_path();
  return path;
}

const char* bf16_path_name(Bf16Path path) { return path == Bf16Path::Avx512Bf16 ? "avx512_bf16" : "portable"; }

namespace {

void shared_input_on(Bf16Path path, int64_t M, int64_t K, const float* A, int64_t lda,
                     std::span<const Bf16Product> products) {
  if (M == 0) return;
  const std::vector<uint16_t> Abf = rounded_rows(M, K, A, lda);
  // The products are tiled as one matrix of all their weight rows would be (a tile may span two of them).
  int64_t total_n = 0;
  for (const Bf16Product& p : products) total_n += p.N;
  if (total_n == 0) return;
  const int64_t col_tiles = std::clamp<int64_t>(total_n * K * 2 / kTileWeightBytes, 1, max_column_tiles());
  const int64_t col_block = (total_n + col_tiles - 1) / col_tiles, n_col = (total_n + col_block - 1) / col_block;
  const int64_t row_block = M <= 16 ? M : kRowBlock, n_row = (M + row_block - 1) / row_block;
  parallel_for(0, n_row * n_col, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t r0 = (t / n_col) * row_block, c0 = (t % n_col) * col_block;
      const int64_t r1 = std::min(M, r0 + row_block), c1 = std::min(total_n, c0 + col_block);
      for_each_stacked_part(products, c0, c1, [&](const Bf16Product& p, int64_t lo_col, int64_t hi_col) {
        if (path == Bf16Path::Avx512Bf16)
          tile_avx512(r0, r1, lo_col, hi_col, K, Abf.data(), p.W, p.ldw, p.C, p.ldc);
        else
          tile_portable(r0, r1, lo_col, hi_col, K, Abf.data(), p.W, p.ldw, p.C, p.ldc);
      });
    }
  });
}

}  // namespace

void gemm_bf16_on(Bf16Path path, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const bfloat16* W,
                  int64_t ldw, float* C, int64_t ldc) {
  HYDRA_CHECK(path == Bf16Path::Portable || cpu_has_avx512_bf16(),
              "gemm_bf16: the avx512_bf16 path was asked for on a CPU without AVX-512 bf16");
  const Bf16Product product{W, ldw, N, C, ldc};
  shared_input_on(path, M, K, A, lda, {&product, 1});
}

void gemm_bf16_shared_input(int64_t M, int64_t K, const float* A, int64_t lda, std::span<const Bf16Product> products) {
  shared_input_on(bf16_path(), M, K, A, lda, products);
}

void gemm_bf16(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const bfloat16* W, int64_t ldw, float* C,
               int64_t ldc) {
  gemm_bf16_on(bf16_path(), M, N, K, A, lda, W, ldw, C, ldc);
}

}  // namespace hydra::kernels
