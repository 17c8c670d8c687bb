// Element types a Tensor can hold.
//
// float32 is the training dtype; float64 exists so gradient checks can run in double; int32/int64 hold
// token ids and indices. bfloat16 is storage only (tensor/bfloat16.h): inference weights, read by the
// bf16 weight product (tensor/gemm_bf16.h), the embedding lookup and conversions; every other op
// refuses it (is_floating() is false for it, and dispatch_all names it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <type_traits>

namespace hydra {

enum class DType : uint8_t {
  Float32 = 0,
  Float64 = 1,
  Int32 = 2,
  Int64 = 3,
  BFloat16 = 4,  // storage only: inference weights
};

inline size_t dtype_size(DType dt) {
  switch (dt) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int32: return 4;
    case DType::Int64: return 8;
    case DType::BFloat16: return 2;
  }
  return 0;
}

inline const char* dtype_name(DType dt) {
  switch (dt) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::BFloat16: return "bfloat16";
  }
  return "unknown";
}

inline bool is_floating(DType dt) { return dt == DType::Float32 || dt == DType::Float64; }

inline std::ostream& operator<<(std::ostream& os, DType dt) { return os << dtype_name(dt); }

struct bfloat16;  // tensor/bfloat16.h

// The C++ type <-> DType mapping used by templated kernels.
template <class T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<double>() { return DType::Float64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::Int32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<bfloat16>() { return DType::BFloat16; }

}  // namespace hydra
