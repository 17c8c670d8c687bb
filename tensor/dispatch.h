// Runtime dtype -> compile-time scalar type.
//
// Kernels are written once as templates over the scalar type T and called through these switches:
//   dispatch_float(x.dtype(), "exp", [&](auto tag) { using T = decltype(tag); ... });
// The tag is a value of type T (its value is unused).
#pragma once

#include <cstdint>

#include "tensor/dtype.h"
#include "tensor/error.h"

namespace hydra {

// float32 / float64 only: the math ops.
template <class F>
decltype(auto) dispatch_float(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    default: break;
  }
  throw Error(detail::concat_message(op, ": expected a float32 or float64 tensor, got ", dtype_name(dt)));
}

// int32 / int64 only: indices.
template <class F>
decltype(auto) dispatch_index(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::Int32: return f(int32_t{});
    case DType::Int64: return f(int64_t{});
    default: break;
  }
  throw Error(detail::concat_message(op, ": expected an int32 or int64 index tensor, got ", dtype_name(dt)));
}

// Every dtype: copies, creation, printing.
template <class F>
decltype(auto) dispatch_all(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::Float32: return f(float{});
    case DType::Float64: return f(double{});
    case DType::Int32: return f(int32_t{});
    case DType::Int64: return f(int64_t{});
    case DType::BFloat16: break;
  }
  throw Error(detail::concat_message(op, ": ", dtype_name(dt),
                                     " tensors are storage only (inference weights); this op does not accept them"));
}

}  // namespace hydra
