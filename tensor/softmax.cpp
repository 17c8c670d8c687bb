#include "tensor/softmax.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <vector>

#include "tensor/copy.h"
#include "tensor/dispatch.h"
#include "tensor/row_reduce.h"
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

}  // namespace hydra::kernels
