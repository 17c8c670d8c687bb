// Sums over one dense row in a fixed order, in double: the row reductions of softmax, cross-entropy,
// RMSNorm and attention all use these, so they all round the same way.
//
// NOTE: accumulation order. Terms go into kLanes = 8 double accumulators, term k into acc[k % 8], which
// are added up in one fixed tree at the end. Eight independent chains vectorize (two AVX2 registers of
// doubles) where one running sum cannot (without -ffast-math the compiler may not reorder it); the order
// depends only on n, so a sum is the same for any thread count; and in double the rounding of a float32
// row sum stays below n·2^-53 of Σ|v| (5e-13 for n = 4096).
#pragma once

#include <cstdint>

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

}  // namespace hydra
