#include "nn/rms_norm.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "autograd/record.h"
#include "tensor/copy.h"
#include "tensor/dispatch.h"
#include "tensor/row_reduce.h"
#include "tensor/parallel.h"

namespace hydra::nn {

namespace {

// NOTE: dw sums over rows in blocks of this many rows: each block's partial is accumulated row by row,
// then the partials are added in block order. The block size is a constant (never the thread count), so
// the rounding, and dw, is the same however the blocks are spread over threads. The partials cost
// c doubles per 64 rows, 1/32 of a float32 x.
constexpr int64_t kRowsPerBlock = 64;

// n rows of c: y = x * s * w with s = rstd[r] = 1 / sqrt(mean(x²) + eps) per row.
template <class T>
void rms_norm_forward(const T* x, const T* w, T* y, T* rstd, int64_t n, int64_t c, double eps) {
  parallel_for(0, n, rows_grain(c), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * c;
      T* yr = y + r * c;
      const double ms = row_dot(xr, xr, c) / double(c);
      const T s = static_cast<T>(1.0 / std::sqrt(ms + eps));  // NOTE: eps inside the root
      rstd[r] = s;
      // NOTE: (x * s) * w in T, the order and precision of OLMo's `w * (x * rsqrt(...))`.
      for (int64_t k = 0; k < c; ++k) yr[k] = (xr[k] * s) * w[k];
    }
  });
}

// The backward of rms_norm_forward from dy and the saved x, w, rstd. dx and dw may be null (not
// needed). Per element in double: the dw sums need it, and the row dot product below cancels.
template <class T>
void rms_norm_backward(const T* dy, const T* x, const T* w, const T* rstd, T* dx, T* dw, int64_t n, int64_t c) {
  const int64_t n_blocks = (n + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<double> partial(dw ? n_blocks * c : 0);  // partial[b * c + k]: block b's share of dw[k]
  const int64_t block_grain = std::max<int64_t>(1, rows_grain(c) / kRowsPerBlock);
  parallel_for(0, n_blocks, block_grain, [&](int64_t b_lo, int64_t b_hi) {
    for (int64_t b = b_lo; b < b_hi; ++b) {
      double* pw = dw ? partial.data() + b * c : nullptr;
      for (int64_t r = b * kRowsPerBlock; r < std::min(n, (b + 1) * kRowsPerBlock); ++r) {
        const T* dyr = dy + r * c;
        const T* xr = x + r * c;
        const double s = rstd[r];
        // forward: y = x̂ * w with x̂ = x * s, so dw += dy * x̂ (summed over every row) and dx̂ = dy * w
        if (pw)
          for (int64_t k = 0; k < c; ++k) pw[k] += double(dyr[k]) * (double(xr[k]) * s);
        if (!dx) continue;
        // forward: x̂ = x * s where s depends on x too, so dx = s * dx̂ + (Σ dx̂ x) * ds/dx;
        // forward: s = (Σ x² / c + eps)^(-1/2), so ds/dx = -s³ x / c. Together
        //   dx = s dx̂ - s³ x Σ(dx̂ x) / c = s * (dy w - x * s² Σ(dy w x) / c)
        const double dot = lane_sum(c, [&](int64_t k) { return double(dyr[k]) * double(w[k]) * double(xr[k]); });
        const double coef = dot * s * s / double(c);
        T* dxr = dx + r * c;
        for (int64_t k = 0; k < c; ++k)
          dxr[k] = static_cast<T>(s * (double(dyr[k]) * double(w[k]) - double(xr[k]) * coef));
      }
    }
  });
  if (!dw) return;
  // dw[k] = Σ_b partial[b * c + k] with b ascending. Columns are independent: split them over threads.
  parallel_for(0, c, rows_grain(n_blocks),
               [&](int64_t lo, int64_t hi) {
                 std::vector<double> acc(hi - lo, 0.0);
                 for (int64_t b = 0; b < n_blocks; ++b)
                   for (int64_t k = lo; k < hi; ++k) acc[k - lo] += partial[b * c + k];
                 for (int64_t k = lo; k < hi; ++k) dw[k] = static_cast<T>(acc[k - lo]);
               });
}

void check_rms_norm(const char* op, const Tensor& x, const Tensor& weight) {
  HYDRA_CHECK(x.dim() >= 1 && weight.dim() == 1 && weight.size(0) == x.size(-1) && weight.size(0) >= 1, op,
              ": input ", shape_str(x.shape()), " and weight ", shape_str(weight.shape()),
              " do not match (the weight must be [C] with C >= 1 the input's last dim)");
  HYDRA_CHECK(is_floating(x.dtype()) && x.dtype() == weight.dtype(), op, ": input ", shape_str(x.shape()), " is ",
              dtype_name(x.dtype()), " and weight ", shape_str(weight.shape()), " is ", dtype_name(weight.dtype()),
              "; both must be float32 or both float64");
}

// What the backward reads: the forward's dense x and w, and one rstd per row.
struct RMSNormSaved {
  Tensor x, w, rstd;  // (N, C) as x's shape, (C), (N); detached
  int64_t n = 0, c = 0;
};

// The backward of rms_norm on tensors: dx and dw for the inputs that need them.
Grads rms_norm_backward(const RMSNormSaved& s, const Tensor& dy_in, const Needs& needs) {
  Tensor dy = kernels::contiguous_raw(dy_in);
  Grads g(2);
  if (needs[0]) g[0] = empty(s.x.shape(), s.x.dtype());
  if (needs[1]) g[1] = empty(s.w.shape(), s.w.dtype());
  dispatch_float(s.x.dtype(), "rms_norm backward", [&](auto tag) {
    using T = decltype(tag);
    rms_norm_backward<T>(dy.data<T>(), s.x.data<T>(), s.w.data<T>(), s.rstd.data<T>(),
                         needs[0] ? g[0].data<T>() : nullptr, needs[1] ? g[1].data<T>() : nullptr, s.n, s.c);
  });
  return g;
}

}  // namespace

Tensor rms_norm(const Tensor& x_in, const Tensor& weight, double eps) {
  check_rms_norm("rms_norm", x_in, weight);
  RMSNormSaved s;
  s.x = kernels::contiguous_raw(x_in).detach();
  s.w = kernels::contiguous_raw(weight).detach();
  s.c = s.w.numel();
  s.n = s.x.numel() / s.c;
  s.rstd = empty({s.n}, s.x.dtype());  // shape: (N): all the backward needs besides x and w
  Tensor y = empty(s.x.shape(), s.x.dtype());
  dispatch_float(s.x.dtype(), "rms_norm", [&](auto tag) {
    using T = decltype(tag);
    rms_norm_forward<T>(s.x.data<T>(), s.w.data<T>(), y.data<T>(), s.rstd.data<T>(), s.n, s.c, eps);
  });
  return record("rms_norm", y, {x_in, weight},
                [s](const Tensor& dy, const Needs& needs) { return rms_norm_backward(s, dy, needs); });
}

Tensor rms_norm_reference(const Tensor& x, const Tensor& weight, double eps) {
  check_rms_norm("rms_norm_reference", x, weight);
  Tensor rstd = rsqrt(add_scalar(mean(pow(x, 2.0), {-1}, /*keepdim=*/true), eps));  // shape: (..., 1)
  Tensor xhat = mul(x, broadcast_to(rstd, x.shape()));                              // shape: (..., C)
  return mul(xhat, broadcast_to(weight, x.shape()));
}

RMSNorm::RMSNorm(int64_t size_, double eps_) : size(size_), eps(eps_) {
  HYDRA_CHECK(size >= 1, "RMSNorm: size = ", size, " must be >= 1");
  HYDRA_CHECK(eps >= 0, "RMSNorm: eps = ", eps, " must be >= 0");
  register_parameter("weight", weight, {size});
}

Tensor RMSNorm::forward(const Tensor& x) const { return rms_norm(x, weight, eps); }

}  // namespace hydra::nn
