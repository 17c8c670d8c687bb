#include "tensor/softmax.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/copy.h"
#include "tensor/dispatch.h"
#include "tensor/parallel.h"

namespace hydra::kernels {

namespace {

// Rows of n elements per task: enough to make a task worth scheduling.
int64_t rows_grain(int64_t n) { return std::max<int64_t>(1, kGrainElementwise / std::max<int64_t>(1, n)); }

// Calls f(first) for every row of a dense (outer, n, inner) block, where the row's elements sit at
// first + k * inner for k < n. Rows are independent, so they run in parallel.
template <class F>
void for_each_row(const Shape& shape, int64_t dim, F f) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= shape[d];
  for (int64_t d = dim + 1; d < static_cast<int64_t>(shape.size()); ++d) inner *= shape[d];
  const int64_t n = shape[dim];
  if (n == 0) return;  // empty rows: nothing to compute
  parallel_for(0, outer * inner, rows_grain(n), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) f((r / inner) * n * inner + r % inner);
  });
}

// ---- one row: x[k * stride] for k < n ----

template <class T>
T row_max(const T* x, int64_t n, int64_t stride) {
  T m = x[0];
  for (int64_t k = 1; k < n; ++k) m = std::max(m, x[k * stride]);
  return m;
}

// NOTE: stability. exp(x - max) is at most 1, so nothing overflows, and the largest term is exactly 1,
// so the sum is at least 1 and its log is safe. The sum is accumulated in double.
template <class T>
void softmax_row(const T* x, T* y, int64_t n, int64_t stride) {
  const T m = row_max(x, n, stride);
  double s = 0;
  for (int64_t k = 0; k < n; ++k) {
    const T e = std::exp(x[k * stride] - m);
    y[k * stride] = e;
    s += e;
  }
  const T inv = static_cast<T>(1.0 / s);
  for (int64_t k = 0; k < n; ++k) y[k * stride] *= inv;
}

// log_softmax(x) = (x - m) - log Σ exp(x - m): subtracting in that order keeps x - m exact near the max.
template <class T>
void log_softmax_row(const T* x, T* y, int64_t n, int64_t stride) {
  const T m = row_max(x, n, stride);
  double s = 0;
  for (int64_t k = 0; k < n; ++k) s += std::exp(x[k * stride] - m);
  const T log_s = static_cast<T>(std::log(s));
  for (int64_t k = 0; k < n; ++k) y[k * stride] = (x[k * stride] - m) - log_s;
}

// forward: y = e^x / Σ e^x, so dx_k = Σ_j dy_j ∂y_j/∂x_k = y_k (dy_k - Σ_j dy_j y_j)
template <class T>
void softmax_backward_row(const T* dy, const T* y, T* dx, int64_t n, int64_t stride) {
  double dot = 0;
  for (int64_t k = 0; k < n; ++k) dot += static_cast<double>(dy[k * stride]) * y[k * stride];
  const T d = static_cast<T>(dot);
  for (int64_t k = 0; k < n; ++k) dx[k * stride] = y[k * stride] * (dy[k * stride] - d);
}

// forward: y = x - log Σ e^x, so dx_k = dy_k - softmax_k Σ_j dy_j, with softmax = e^y
template <class T>
void log_softmax_backward_row(const T* dy, const T* y, T* dx, int64_t n, int64_t stride) {
  double s = 0;
  for (int64_t k = 0; k < n; ++k) s += dy[k * stride];
  const T sum_dy = static_cast<T>(s);
  for (int64_t k = 0; k < n; ++k) dx[k * stride] = dy[k * stride] - std::exp(y[k * stride]) * sum_dy;
}

// ---- cross-entropy helpers ----

// Targets as a dense int64 tensor (a copy of N integers at most: small next to the N x V logits).
Tensor targets_int64(const Tensor& targets) {
  return targets.dtype() == DType::Int64 ? contiguous_raw(targets) : cast_raw(targets, DType::Int64);
}

void check_cross_entropy_args(const Tensor& logits, const Tensor& targets) {
  HYDRA_CHECK(is_floating(logits.dtype()), "cross_entropy: logits must be float32 or float64, got ",
              dtype_name(logits.dtype()), " (logits shape ", shape_str(logits.shape()), ")");
  HYDRA_CHECK(targets.dtype() == DType::Int32 || targets.dtype() == DType::Int64,
              "cross_entropy: targets must be int32 or int64, got ", dtype_name(targets.dtype()),
              " (targets shape ", shape_str(targets.shape()), ")");
  HYDRA_CHECK(logits.dim() >= 1, "cross_entropy: logits must have a class dim, (..., V), got shape ",
              shape_str(logits.shape()));
  const Shape rows_shape(logits.shape().begin(), logits.shape().end() - 1);
  HYDRA_CHECK(targets.shape() == rows_shape, "cross_entropy: targets shape ", shape_str(targets.shape()),
              " must equal logits shape ", shape_str(logits.shape()), " without its last dim, ",
              shape_str(rows_shape));
}

// Every target must be a class in [0, V) or ignore_index. Checked serially before any work starts, so
// the error names the first bad target whatever the thread count.
void check_target_values(const int64_t* t, const Shape& targets_shape, int64_t V, int64_t ignore_index) {
  const int64_t N = shape_numel(targets_shape);
  for (int64_t r = 0; r < N; ++r) {
    const bool valid = t[r] == ignore_index || (t[r] >= 0 && t[r] < V);
    if (valid) continue;
    Shape position(targets_shape.size());  // r as a multi-index into targets
    for (int64_t d = static_cast<int64_t>(targets_shape.size()) - 1, rest = r; d >= 0; --d) {
      position[d] = rest % targets_shape[d];
      rest /= targets_shape[d];
    }
    throw Error(detail::concat_message("cross_entropy: target ", t[r], " at position ", shape_str(position),
                                       " is out of range for V = ", V, " classes (expected 0 <= target < ", V,
                                       ", or ignore_index ", ignore_index, ")"));
  }
}

}  // namespace

Tensor softmax(const Tensor& x_any, int64_t dim, bool log) {
  Tensor x = contiguous_raw(x_any);
  Tensor y = empty(x.shape(), x.dtype());
  dispatch_float(x.dtype(), log ? "log_softmax" : "softmax", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    const int64_t n = x.size(dim), stride = contiguous_strides(x.shape())[dim];
    for_each_row(x.shape(), dim, [&](int64_t first) {
      if (log)
        log_softmax_row(px + first, py + first, n, stride);
      else
        softmax_row(px + first, py + first, n, stride);
    });
  });
  return y;
}

Tensor softmax_backward(const Tensor& dy_any, const Tensor& y_any, int64_t dim, bool log) {
  Tensor dy = contiguous_raw(dy_any), y = contiguous_raw(y_any);
  HYDRA_ASSERT(dy.shape() == y.shape() && dy.dtype() == y.dtype());
  Tensor dx = empty(y.shape(), y.dtype());
  dispatch_float(y.dtype(), log ? "log_softmax backward" : "softmax backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pdy = dy.data<T>();
    const T* py = y.data<T>();
    T* pdx = dx.data<T>();
    const int64_t n = y.size(dim), stride = contiguous_strides(y.shape())[dim];
    for_each_row(y.shape(), dim, [&](int64_t first) {
      if (log)
        log_softmax_backward_row(pdy + first, py + first, pdx + first, n, stride);
      else
        softmax_backward_row(pdy + first, py + first, pdx + first, n, stride);
    });
  });
  return dx;
}

CrossEntropyForward cross_entropy_forward(const Tensor& logits_any, const Tensor& targets_any,
                                          int64_t ignore_index) {
  check_cross_entropy_args(logits_any, targets_any);
  Tensor logits = contiguous_raw(logits_any);
  Tensor targets = targets_int64(targets_any);
  const int64_t V = logits.size(-1), N = targets.numel();
  const int64_t* t = targets.data<int64_t>();
  check_target_values(t, targets.shape(), V, ignore_index);

  CrossEntropyForward f;
  for (int64_t r = 0; r < N; ++r) f.count += t[r] != ignore_index;
  // NOTE: lse is kept in float64 whatever the logits' dtype. The backward forms exp(logit - lse); with
  // logits near 1e4 a float32 lse is off by up to half an ulp of 1e4 (~5e-4), which would become a
  // 5e-4 relative error in every probability. N doubles are nothing next to the N x V logits.
  f.lse = empty({N}, DType::Float64);
  f.loss = empty({}, logits.dtype());
  double* lse = f.lse.data<double>();
  std::vector<double> row_loss(static_cast<size_t>(N), 0.0);  // lse - logit[target]; 0 when ignored
  dispatch_float(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    const T* px = logits.data<T>();
    parallel_for(0, N, rows_grain(V), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        lse[r] = 0;
        if (t[r] == ignore_index) continue;
        const T* x = px + r * V;  // this row's logits
        const T m = row_max(x, V, 1);
        double s = 0;  // Σ exp(x - m): stable, as in softmax_row
        for (int64_t k = 0; k < V; ++k) s += std::exp(x[k] - m);
        lse[r] = m + std::log(s);
        row_loss[r] = lse[r] - x[t[r]];
      }
    });
    // NOTE: the row losses are added in row order on one thread, so the sum is the same for any
    // thread count. N additions are cheap next to the N x V exponentials above.
    double total = 0;
    for (int64_t r = 0; r < N; ++r) total += row_loss[r];
    // With every row ignored this is 0 / 0 = NaN, as PyTorch.
    *f.loss.data<T>() = static_cast<T>(total / static_cast<double>(f.count));
  });
  return f;
}

Tensor cross_entropy_backward(const Tensor& logits_any, const Tensor& targets_any, const Tensor& lse_any,
                              int64_t count, const Tensor& dloss, int64_t ignore_index) {
  Tensor logits = contiguous_raw(logits_any);
  Tensor targets = targets_int64(targets_any);
  Tensor lse_t = contiguous_raw(lse_any);
  const int64_t V = logits.size(-1), N = targets.numel();
  HYDRA_ASSERT(lse_t.numel() == N && lse_t.dtype() == DType::Float64 && dloss.numel() == 1);
  const int64_t* t = targets.data<int64_t>();
  const double* lse = lse_t.data<double>();
  // forward: loss = Σ_counted (lse - logit[target]) / count, so dlogit = (softmax - onehot) * dloss / count
  const double scale = count > 0 ? dloss.item<double>() / static_cast<double>(count) : 0.0;
  Tensor dlogits = empty(logits.shape(), logits.dtype());
  dispatch_float(logits.dtype(), "cross_entropy backward", [&](auto tag) {
    using T = decltype(tag);
    const T* px = logits.data<T>();
    T* pdx = dlogits.data<T>();
    const T c = static_cast<T>(scale);
    parallel_for(0, N, rows_grain(V), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const T* x = px + r * V;
        T* dx = pdx + r * V;
        if (t[r] == ignore_index) {  // ignored rows take no part in the loss
          std::fill(dx, dx + V, T(0));
          continue;
        }
        // softmax_k = exp(x_k - lse); the subtraction is done in double (see the NOTE on lse above).
        for (int64_t k = 0; k < V; ++k) dx[k] = std::exp(static_cast<T>(x[k] - lse[r])) * c;
        // the onehot term: softmax_t - 1 at the target
        dx[t[r]] = (std::exp(static_cast<T>(x[t[r]] - lse[r])) - T(1)) * c;
      }
    });
  });
  return dlogits;
}

}  // namespace hydra::kernels
