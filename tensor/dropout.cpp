#include "tensor/dropout.h"

#include "tensor/copy.h"
#include "tensor/dispatch.h"
#include "tensor/parallel.h"

namespace hydra::kernels {

Tensor dropout(const Tensor& x, double p, const Generator& gen) {
  HYDRA_CHECK(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), got ", p);
  HYDRA_CHECK(is_floating(x.dtype()), "dropout: input ", shape_str(x.shape()), " must be float32 or float64, got ",
              dtype_name(x.dtype()));
  Tensor in = x.is_contiguous() ? x : contiguous_raw(x);
  Tensor out = empty(x.shape(), x.dtype());
  // NOTE: element i is dropped when its uniform u = (bits >> 11) · 2⁻⁵³ (tensor/random.cpp's draw) is
  // below p, i.e. when (bits >> 11) < p · 2⁵³; both sides are exact doubles, so the comparison is the
  // uniform draw's without rounding, and P(drop) = p up to 2⁻⁵³.
  const double threshold = p * 0x1.0p53;
  const double scale = 1.0 / (1.0 - p);
  dispatch_float(x.dtype(), "dropout", [&](auto tag) {
    using T = decltype(tag);
    const T* src = in.data<T>();
    T* dst = out.data<T>();
    const T s = static_cast<T>(scale);  // as PyTorch: the kept values are multiplied by 1/(1-p) in x's dtype
    parallel_for(0, out.numel(), 4096, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const bool drop = static_cast<double>(gen.bits(static_cast<uint64_t>(i), 0) >> 11) < threshold;
        dst[i] = drop ? T(0) : src[i] * s;
      }
    });
  });
  return out;
}

}  // namespace hydra::kernels
