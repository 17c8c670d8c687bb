#include "tensor/softmax.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "tensor/copy.h"
#include "tensor/dispatch.h"
#include "tensor/lane_sum.h"
#include "tensor/parallel.h"
#include "tensor/vec_math.h"

namespace hydra::kernels {

namespace {

// Calls row_fn(in_rows, out_row, n) for every row of a dense (outer, n, inner) block around dim, where
// in_rows holds the row of each of the K inputs. Rows along the last dim (inner == 1) are dense and are
// passed in place. Other rows have their elements `inner` apart: they are gathered into dense scratch
// rows and the output rows are scattered back, so the row kernels below only ever see dense rows (which
// is what lets them vectorize) and do the same arithmetic whichever dim they run along. Each row is
// done by one task from start to end, so results do not depend on the thread count.
template <class T, size_t K, class F>
void for_each_row(const Shape& shape, int64_t dim, std::array<const T*, K> in, T* out, F row_fn) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= shape[d];
  for (int64_t d = dim + 1; d < static_cast<int64_t>(shape.size()); ++d) inner *= shape[d];
  const int64_t n = shape[dim];
  if (n == 0) return;  // empty rows: nothing to compute
  if (inner == 1) {
    parallel_for(0, outer, rows_grain(n), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        std::array<const T*, K> rows;
        for (size_t i = 0; i < K; ++i) rows[i] = in[i] + r * n;
        row_fn(rows, out + r * n, n);
      }
    });
    return;
  }
  // Strided rows go through scratch a tile at a time: up to 16 rows that are neighbours along the inner
  // dim, so each step along the row reads and writes 16 adjacent elements (a cache line of float32)
  // rather than one element per cache line and page. Fewer rows when n is large: the scratch, K + 1
  // rows per tile row, stays under 64K elements (256 KB of float32, about an L2).
  const int64_t tile = std::clamp<int64_t>((int64_t{1} << 16) / (static_cast<int64_t>(K + 1) * n), 1, 16);
  parallel_for(0, outer * inner, rows_grain(n), [&](int64_t lo, int64_t hi) {
    std::vector<T> scratch(static_cast<size_t>((K + 1) * tile * n));
    auto dense = [&](size_t which, int64_t b) { return scratch.data() + (which * tile + b) * n; };
    for (int64_t r = lo; r < hi;) {
      const int64_t a = r / inner, i0 = r % inner;  // the tile's rows are (a, :, i0 + b), b < rows
      const int64_t rows = std::min({tile, hi - r, inner - i0});
      const int64_t first = a * n * inner + i0;  // element k of row b is at first + k * inner + b
      for (size_t i = 0; i < K; ++i)
        for (int64_t k = 0; k < n; ++k)
          for (int64_t b = 0; b < rows; ++b) dense(i, b)[k] = in[i][first + k * inner + b];
      for (int64_t b = 0; b < rows; ++b) {
        std::array<const T*, K> row_in;
        for (size_t i = 0; i < K; ++i) row_in[i] = dense(i, b);
        row_fn(row_in, dense(K, b), n);
      }
      for (int64_t k = 0; k < n; ++k)
        for (int64_t b = 0; b < rows; ++b) out[first + k * inner + b] = dense(K, b)[k];
      r += rows;
    }
  });
}

// ---- reductions over one dense row (sums: tensor/lane_sum.h) ----

// The maximum (n >= 1). Kept as a running max of 64-element blocks in a lane array: the inner loop
// over j is then elementwise, which GCC vectorizes (8 AVX2 registers of lanes), where a max reduction
// (a single running m, or 8 lanes in registers) is not one it will vectorize without -ffast-math.
// The max of a set does not depend on the order anyway. A NaN in the row makes every softmax output
// NaN whatever max returns, because exp(NaN - m) = NaN enters the sum.
template <class T>
T row_max(const T* x, int64_t n) {
  constexpr int64_t kBlock = 64;
  T lane[kBlock];
  for (int64_t j = 0; j < kBlock; ++j) lane[j] = x[0];  // any element is a valid start
  int64_t k = 0;
  for (; k + kBlock <= n; k += kBlock)
    for (int64_t j = 0; j < kBlock; ++j) lane[j] = lane[j] < x[k + j] ? x[k + j] : lane[j];
  T m = x[0];
  for (int64_t j = 0; j < kBlock; ++j) m = m < lane[j] ? lane[j] : m;
  for (; k < n; ++k) m = m < x[k] ? x[k] : m;
  return m;
}

// Σ exp(x[k] - m) over a dense row. The exponentials pass through a small stack buffer a block at a
// time, so that the exp loop and the sum loop each vectorize without a row-sized scratch.
template <class T>
double sum_exp_shifted(const T* x, int64_t n, T m) {
  constexpr int64_t kBlock = 512;  // a multiple of kLanes (see add_to_lanes); 2 KB of float32
  static_assert(kBlock % kLanes == 0);
  T e[kBlock];
  double acc[kLanes] = {};
  for (int64_t k0 = 0; k0 < n; k0 += kBlock) {
    const int64_t len = std::min(kBlock, n - k0);
    for (int64_t k = 0; k < len; ++k) e[k] = vexp(x[k0 + k] - m);
    add_to_lanes(acc, len, [&e](int64_t k) { return static_cast<double>(e[k]); });
  }
  return sum_lanes(acc);
}

// ---- one dense row: x[0..n-1] ----
// NOTE: vexp is std::exp for float64 and a vectorizable exp within 2 ulp for float32 (tensor/vec_math.h).

// NOTE: stability. exp(x - max) is at most 1, so nothing overflows, and the largest term is exactly 1,
// so the sum is at least 1 and its log is safe.
template <class T>
void softmax_row(const T* x, T* y, int64_t n) {
  const T m = row_max(x, n);
  for (int64_t k = 0; k < n; ++k) y[k] = vexp(x[k] - m);
  const T inv = static_cast<T>(1.0 / row_sum(y, n));
  for (int64_t k = 0; k < n; ++k) y[k] *= inv;
}

// log_softmax(x) = (x - m) - log Σ exp(x - m): subtracting in that order keeps x - m exact near the max.
template <class T>
void log_softmax_row(const T* x, T* y, int64_t n) {
  const T m = row_max(x, n);
  const T log_s = static_cast<T>(std::log(sum_exp_shifted(x, n, m)));
  for (int64_t k = 0; k < n; ++k) y[k] = (x[k] - m) - log_s;
}

// forward: y = e^x / Σ e^x, so dx_k = Σ_j dy_j ∂y_j/∂x_k = y_k (dy_k - Σ_j dy_j y_j)
template <class T>
void softmax_backward_row(const T* dy, const T* y, T* dx, int64_t n) {
  const T d = static_cast<T>(row_dot(dy, y, n));
  for (int64_t k = 0; k < n; ++k) dx[k] = y[k] * (dy[k] - d);
}

// forward: y = x - log Σ e^x, so dx_k = dy_k - softmax_k Σ_j dy_j, with softmax = e^y
template <class T>
void log_softmax_backward_row(const T* dy, const T* y, T* dx, int64_t n) {
  const T sum_dy = static_cast<T>(row_sum(dy, n));
  for (int64_t k = 0; k < n; ++k) dx[k] = dy[k] - vexp(y[k]) * sum_dy;
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
    throw Error(detail::concat_message("cross_entropy: target ", t[r], " at position ",
                                       shape_str(unravel_index(r, targets_shape)),
                                       " is out of range for V = ", V, " classes (expected 0 <= target < ", V,
                                       ", or ignore_index ", ignore_index, ")"));
  }
}

}  // namespace

Tensor softmax_raw(const Tensor& x_any, int64_t dim, bool log) {
  Tensor x = contiguous_raw(x_any);
  Tensor y = empty(x.shape(), x.dtype());
  dispatch_float(x.dtype(), log ? "log_softmax" : "softmax", [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.data<T>();
    T* py = y.data<T>();
    for_each_row(x.shape(), dim, std::array{px}, py, [&](std::array<const T*, 1> in, T* out, int64_t n) {
      if (log)
        log_softmax_row(in[0], out, n);
      else
        softmax_row(in[0], out, n);
    });
  });
  return y;
}

Tensor softmax_backward_raw(const Tensor& dy_any, const Tensor& y_any, int64_t dim, bool log) {
  Tensor dy = contiguous_raw(dy_any), y = contiguous_raw(y_any);
  HYDRA_ASSERT(dy.shape() == y.shape() && dy.dtype() == y.dtype());
  Tensor dx = empty(y.shape(), y.dtype());
  dispatch_float(y.dtype(), log ? "log_softmax backward" : "softmax backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pdy = dy.data<T>();
    const T* py = y.data<T>();
    T* pdx = dx.data<T>();
    for_each_row(y.shape(), dim, std::array{pdy, py}, pdx, [&](std::array<const T*, 2> in, T* out, int64_t n) {
      if (log)
        log_softmax_backward_row(in[0], in[1], out, n);
      else
        softmax_backward_row(in[0], in[1], out, n);
    });
  });
  return dx;
}

CrossEntropyForward cross_entropy_forward_raw(const Tensor& logits_any, const Tensor& targets_any,
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
        const T m = row_max(x, V);
        lse[r] = m + std::log(sum_exp_shifted(x, V, m));  // stable, as in softmax_row
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

Tensor cross_entropy_backward_raw(const Tensor& logits_any, const Tensor& targets_any, const Tensor& lse_any,
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
        const double lse_r = lse[r];
        for (int64_t k = 0; k < V; ++k) dx[k] = vexp(static_cast<T>(x[k] - lse_r)) * c;
        // the onehot term: softmax_t - 1 at the target
        dx[t[r]] = (vexp(static_cast<T>(x[t[r]] - lse_r)) - T(1)) * c;
      }
    });
  });
  return dlogits;
}

}  // namespace hydra::kernels
