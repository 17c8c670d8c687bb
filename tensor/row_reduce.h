// Reductions over one dense row, shared by the row kernels (softmax, cross-entropy, RMSNorm, attention):
// sums in a fixed order in double, so they all round the same way, the maximum, and Σ exp(x - max).
//
// NOTE: accumulation order. Terms go into kLanes = 8 double accumulators, term k into acc[k % 8], which
// are added up in one fixed tree at the end. Eight independent chains vectorize (two AVX2 registers of
// doubles) where one running sum cannot (without -ffast-math the compiler may not reorder it); the order
// depends only on n, so a sum is the same for any thread count; and in double the rounding of a float32
// row sum stays below n·2^-53 of Σ|v| (5e-13 for n = 4096).
#pragma once

#include <algorithm>
#include <cstdint>

#include "tensor/vec_math.h"

namespace hydra {

constexpr int64_t kLanes = 8;

// acc[k % 8] += term(k) for k < n. A caller adding a row in pieces passes pieces whose lengths are
// multiples of 8 (all but the last), with term indexing into the piece, so that element k of the row
// still lands in acc[k % 8].
template <class Term>
void add_to_lanes(double (&acc)[kLanes], int64_t n, Term term) {
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int64_t j = 0; j < kLanes; ++j) acc[j] += term(k + j);
  for (; k < n; ++k) acc[k % kLanes] += term(k);
}

// The lanes added in one fixed tree.
inline double sum_lanes(const double (&acc)[kLanes]) {
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// Σ_{k < n} term(k), term returning a double.
template <class Term>
double lane_sum(int64_t n, Term term) {
  double acc[kLanes] = {};
  add_to_lanes(acc, n, term);
  return sum_lanes(acc);
}

// Σ v[k] over a dense row of n elements.
template <class T>
double row_sum(const T* v, int64_t n) {
  return lane_sum(n, [v](int64_t k) { return static_cast<double>(v[k]); });
}

// Σ a[k] b[k] over two dense rows. (For float32 the double products are exact.)
template <class T>
double row_dot(const T* a, const T* b, int64_t n) {
  return lane_sum(n, [a, b](int64_t k) { return static_cast<double>(a[k]) * static_cast<double>(b[k]); });
}

// The maximum (n >= 1). Kept as a running max of 64-element blocks in a lane array: the inner loop
// over j is then elementwise, which GCC vectorizes (8 AVX2 registers of lanes), where a max reduction
// (a single running m, or 8 lanes in registers) is not one it will vectorize without -ffast-math.
// The max of a set does not depend on the order anyway. A NaN in the row makes every softmax output
// NaN whatever max returns, because exp(NaN - m) = NaN enters the sum.
template <class T>
T row_max(const T* x, int64_t n) {
  constexpr int64_t kBlock = 64;
  T lane[kBlock];
  for (int64_t j = 0; j < kBlock; ++j) lane[j] = x[0];  // any element is a valid start
  int64_t k = 0;
  for (; k + kBlock <= n; k += kBlock)
    for (int64_t j = 0; j < kBlock; ++j) lane[j] = lane[j] < x[k + j] ? x[k + j] : lane[j];
  T m = x[0];
  for (int64_t j = 0; j < kBlock; ++j) m = m < lane[j] ? lane[j] : m;
  for (; k < n; ++k) m = m < x[k] ? x[k] : m;
  return m;
}

// Σ exp(x[k] - m) over a dense row. The exponentials pass through a small stack buffer a block at a
// time, so that the exp loop and the sum loop each vectorize without a row-sized scratch.
template <class T>
double sum_exp_shifted(const T* x, int64_t n, T m) {
  constexpr int64_t kBlock = 512;  // a multiple of kLanes (see add_to_lanes); 2 KB of float32
  static_assert(kBlock % kLanes == 0);
  T e[kBlock];
  double acc[kLanes] = {};
  for (int64_t k0 = 0; k0 < n; k0 += kBlock) {
    const int64_t len = std::min(kBlock, n - k0);
    for (int64_t k = 0; k < len; ++k) e[k] = vexp(x[k0 + k] - m);
    add_to_lanes(acc, len, [&e](int64_t k) { return static_cast<double>(e[k]); });
  }
  return sum_lanes(acc);
}

}  // namespace hydra
