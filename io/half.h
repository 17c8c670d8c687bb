// IEEE half (F16) and bfloat16 (BF16) to float32, for loading HuggingFace checkpoints.
//
// Both widenings are exact: every F16 and every BF16 value (subnormals, ±0, ±inf, NaN with its payload)
// is a float32 value, so no rounding is involved. bfloat16 is the top 16 bits of a float32; F16 has a
// 5-bit exponent (bias 15) and a 10-bit mantissa, and its subnormals become float32 normals.
#pragma once

#include <bit>
#include <cstdint>

namespace hydra::io {

inline float bf16_to_float(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

inline float f16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  if (exponent == 0) {
    // ±0 and subnormals: mantissa · 2^-24, exact in float32 (at most 10 significant bits).
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;
    return std::bit_cast<float>(std::bit_cast<uint32_t>(magnitude) | sign);
  }
  if (exponent == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));  // inf, NaN
  return std::bit_cast<float>(sign | ((exponent - 15 + 127) << 23) | (mantissa << 13));
}

}  // namespace hydra::io
