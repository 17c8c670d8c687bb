// Vectorizable math for the float32 kernels: vexp(float), an exp that the compiler can inline into a loop
// and turn into AVX2 code, where std::exp(float) is an opaque libm call per element.
//
// Contract: vexp(float) is within 2 ulp of exp computed in double and rounded, over the whole float
// range (tests/test_vec_math.cpp sweeps it; the measured maximum is 1 ulp), including the subnormal
// results, and exact at the edges: +inf above the overflow threshold, 0 below the underflow threshold,
// NaN -> NaN, -inf -> 0, +inf -> +inf. vexp(double) is std::exp: float64 is what gradchecks and
// references run in, and must stay libm-exact.
//
// Deliberately not here: intrinsics. The code is plain scalar C++ (selects, std::fma, std::bit_cast)
// written so that GCC's loop vectorizer turns it into vector code at -O3 -march=native. Every operation
// is an IEEE basic operation or a fused multiply-add, so a vectorized loop, its scalar remainder and a
// plain call give bit-identical results: where a parallel_for happens to split an array never changes
// a value.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace hydra {

// The edges of float32 exp. Above kExpMaxFinite (0x42B17217, the largest float whose exp is finite)
// exp(x) >= FLT_MAX + half an ulp, which rounds to +inf: ln(FLT_MAX + 2^103) = 88.7228390...
// Below kExpMinNonzero (0xC2CFF1B4, the smallest float whose exp is not 0) exp(x) < 2^-150, half the
// smallest subnormal, which rounds to 0: ln(2^-150) = -103.9720770...
inline constexpr float kExpMaxFinite = 88.72283172607421875f;
inline constexpr float kExpMinNonzero = -103.97207641601562f;

// exp(x) = 2^n · e^r with n = round(x / ln 2) and r = x - n·ln 2, |r| <= ln(2)/2 (Cody–Waite).
inline float vexp(float x) {
  // float(log2(e)), and ln 2 as float(ln 2) plus the float nearest to the remainder (Cody–Waite).
  // ln2_hi has 24 significant bits; the FMA below keeps n·ln2_hi unrounded, so x - n·ln2_hi is exact
  // (for n != 0, |x| >= 0.34, so x and the result sit on a grid of 2^-25 and |result| < 0.5 = 2^24
  // grid steps). The remainder ln2_lo then adds only a rounding of r's last bit.
  constexpr float kLog2e = 1.44269502162933349609375f;   // 0x3FB8AA3B
  constexpr float kLn2Hi = 0.693147182464599609375f;     // 0x3F317218
  constexpr float kLn2Lo = -1.9046542121259336e-09f;     // 0xB102E308, ln 2 - kLn2Hi
  // 1.5·2^23: for |v| < 2^22, v + kRound lies in [2^23, 2^24), where floats are the integers, so the
  // addition rounds v to the nearest integer n (ties to even), and the sum's bit pattern is
  // bits(kRound) + n. That reads n without a float->int conversion (undefined behaviour out of range;
  // std::lrint is a libm call).
  constexpr float kRound = 12582912.0f;
  constexpr int32_t kRoundBits = 0x4B400000;
  // exp(r) ~ 1 + r + r^2·(c2 + c3 r + c4 r^2 + c5 r^3 + c6 r^4): degree 6, with the coefficients of
  // 1 and r pinned to 1 so that exp(r) is nearly exact for tiny r. c2..c6 are the minimax fit (Remez
  // exchange in 50-digit arithmetic) of the relative error on |r| <= ln(2)/2 (widened by 1e-5 for
  // kLog2e's rounding), rounded to float: relative error 3.1e-9 = 0.03 ulp, against 1.2e-7 = 1 ulp
  // for the Taylor coefficients 1/2, 1/6, 1/24, 1/120, 1/720.
  constexpr float c2 = 0.4999999403953552f;     // 0x1.fffffcp-2
  constexpr float c3 = 0.1666652113199234f;     // 0x1.555492p-3
  constexpr float c4 = 0.04166838899254799f;    // 0x1.5558f2p-5
  constexpr float c5 = 0.008368710987269878f;   // 0x1.1239d6p-7
  constexpr float c6 = 0.0013814611593261361f;  // 0x1.6a244ap-10

  // Clamp to [-104, 89], just past both edges: that keeps n in [-150, 128], where the exponent tricks
  // below are valid, and the arithmetic then lands exactly on the edge values by itself (see the end).
  // A NaN fails both comparisons and flows through every step as NaN; -inf clamps to -104 (result 0)
  // and +inf to 89 (result +inf).
  // NOTE: no select on x after the arithmetic: GCC (12) does not if-convert one there (it sinks the
  // arithmetic into the branch, which may trap), and the loop would not vectorize at all.
  float xc = x < -104.0f ? -104.0f : x;
  xc = xc > 89.0f ? 89.0f : xc;

  const float t = std::fma(xc, kLog2e, kRound);
  const int32_t n = std::bit_cast<int32_t>(t) - kRoundBits;  // round(x·log2(e)), in [-150, 128]
  const float nf = t - kRound;                                // the same n as a float, exactly
  float r = std::fma(nf, -kLn2Hi, xc);
  r = std::fma(nf, -kLn2Lo, r);

  // Horner in r, then 1 + (r + r^2·q): adding the 1 last is the only rounding at full size.
  float q = std::fma(c6, r, c5);
  q = std::fma(q, r, c4);
  q = std::fma(q, r, c3);
  q = std::fma(q, r, c2);
  const float p = 1.0f + std::fma(r * r, q, r);

  // 2^n from exponent bits. n can be 128 (2^128 is not a float) or below -126 (no normal float has that
  // exponent), so it is applied as two halves n1 + n2, each within [-75, 64] and so a normal float:
  // p·2^n1 is exact, and the second product rounds once, also correctly into the subnormal range.
  const int32_t n1 = n >> 1;  // floor(n / 2): C++20 defines >> on negative values
  const int32_t n2 = n - n1;
  const float s1 = std::bit_cast<float>(static_cast<uint32_t>(n1 + 127) << 23);
  // Below kExpMinNonzero the result is 0: there s2's bits are cleared (s2 = +0, so the product is an
  // exact 0) instead of letting the product underflow. NOTE: an underflowing multiply costs a microcode
  // assist on Zen 3 (measured 2.5x slower per element), and masked attention logits (-inf) land here.
  const uint32_t keep = x < kExpMinNonzero ? 0u : 0xFFFFFFFFu;  // a NaN keeps everything
  const float s2 = std::bit_cast<float>((static_cast<uint32_t>(n2 + 127) << 23) & keep);

  // The edges come out exact because p is within an ulp of e^r and the true result is many ulps from
  // the rounding boundaries there. Overflow: n = 128 for every x in [88.38, 89], and +inf is the
  // rounding of anything >= 2^128·(1 - 2^-25). Past kExpMaxFinite, r >= 2.4e-7, so p >= 1 and the
  // product is +inf; at kExpMaxFinite, r = -7.4e-6, so p < 1 - 7e-6 and the product is finite.
  // Underflow: below kExpMinNonzero s2 = 0 (above); at kExpMinNonzero, n = -150 and r = +6.7e-7, so
  // p > 1 and p·2^-150, just past the tie between 0 and 2^-149, rounds up to 2^-149, as exp does.
  // tests/test_vec_math.cpp checks all of this, and the 2 ulp bound, on a dense sweep.
  return (p * s1) * s2;
}

// float64 is for gradchecks and references: libm's exp, bit for bit.
inline double vexp(double x) { return std::exp(x); }

}  // namespace hydra
