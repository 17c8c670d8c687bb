// Bulk bfloat16 conversions (the rounding rule is in bfloat16.h).
#include "tensor/bfloat16.h"

#include <algorithm>

#include "tensor/copy.h"
#include "tensor/parallel.h"

namespace hydra {

namespace {

constexpr int64_t kChunk = 1 << 16;

}  // namespace

void float_to_bfloat16(const float* src, bfloat16* dst, int64_t n) {
  parallel_for(0, (n + kChunk - 1) / kChunk, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c)
      for (int64_t i = c * kChunk, end = std::min(n, (c + 1) * kChunk); i < end; ++i) dst[i] = to_bfloat16(src[i]);
  });
}

void bfloat16_to_float(const bfloat16* src, float* dst, int64_t n) {
  parallel_for(0, (n + kChunk - 1) / kChunk, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c)
      for (int64_t i = c * kChunk, end = std::min(n, (c + 1) * kChunk); i < end; ++i) dst[i] = to_float(src[i]);
  });
}

Tensor to_bfloat16(const Tensor& x) {
  HYDRA_CHECK(x.dtype() == DType::Float32, "to_bfloat16: expected a float32 tensor, got ", dtype_name(x.dtype()),
              " of shape ", shape_str(x.shape()));
  const Tensor dense = kernels::contiguous_raw(x);
  Tensor out = empty(x.shape(), DType::BFloat16);
  float_to_bfloat16(dense.data<float>(), out.data<bfloat16>(), x.numel());
  return out;
}

Tensor bfloat16_to_float32(const Tensor& x) {
  HYDRA_CHECK(x.dtype() == DType::BFloat16, "bfloat16_to_float32: expected a bfloat16 tensor, got ",
              dtype_name(x.dtype()), " of shape ", shape_str(x.shape()));
  HYDRA_CHECK(x.is_contiguous(), "bfloat16_to_float32: the tensor ", shape_str(x.shape()), " must be dense");
  Tensor out = empty(x.shape(), DType::Float32);
  bfloat16_to_float(x.data<bfloat16>(), out.data<float>(), x.numel());
  return out;
}

}  // namespace hydra
