// bfloat16: the upper 16 bits of an IEEE float32 (sign, the same 8 exponent bits, 7 mantissa bits).
//
// Hydra stores inference weights in it (docs/generation.md, 'bfloat16 weights'): half the bytes of
// float32 to read per token, the same range. Only storage: activations and sums stay float32, and the
// one kernel that reads bf16 is the weight product in tensor/gemm_bf16.h (every other op refuses a
// bfloat16 tensor, since is_floating() is false for it).
//
// float32 -> bfloat16 rounds to nearest, ties to even (the 16 dropped bits decide; a tie keeps the
// even mantissa). Values beyond the largest bfloat16 round to infinity as IEEE rounding does; infinities
// stay infinities; a NaN stays a NaN with its sign (made quiet, so it cannot round into an infinity).
// bfloat16 -> float32 is exact (16 zero bits appended).
#pragma once

#include <cstdint>
#include <cstring>

#include "tensor/tensor.h"

namespace hydra {

// One bfloat16 value by its bits (a distinct type, so Tensor::data<bfloat16>() checks the dtype).
struct bfloat16 {
  uint16_t bits;
};

inline uint16_t float_to_bfloat16_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // NaN: quiet, kept
  // Round to nearest even: add just under half of the dropped range, plus one when the kept part is odd.
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float bfloat16_bits_to_float(uint16_t b) {
  const uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline bfloat16 to_bfloat16(float f) { return bfloat16{float_to_bfloat16_bits(f)}; }
inline float to_float(bfloat16 b) { return bfloat16_bits_to_float(b.bits); }

// Bulk conversions of n values (parallel over chunks; every value converts on its own, so the result
// does not depend on the thread count).
void float_to_bfloat16(const float* src, bfloat16* dst, int64_t n);
void bfloat16_to_float(const bfloat16* src, float* dst, int64_t n);

// A new dense bfloat16 tensor holding x (float32, any strides) rounded as above.
Tensor to_bfloat16(const Tensor& x);
// A new dense float32 tensor holding x (bfloat16) exactly.
Tensor bfloat16_to_float32(const Tensor& x);

}  // namespace hydra
