#include "tensor/reduce.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "tensor/copy.h"
#include "tensor/dispatch.h"
#include "tensor/parallel.h"

namespace hydra::kernels {

namespace {

// Columns of `inner` one work item (of sum or max) handles at once: its running values stay in L1.
constexpr int64_t kInnerBlock = 512;

// Product of shape[begin..end).
int64_t span_numel(const Shape& shape, int64_t begin, int64_t end) {
  int64_t n = 1;
  for (int64_t d = begin; d < end; ++d) n *= shape[d];
  return n;
}

// out[a, i] = Σ_k x[a, k, i] / divisor over a dense (outer, n, inner) block.
//
// Work item (a, c, b) sums chunk c of k (kSumChunk terms) for the columns of block b into
// partial[a][c][i]; then each output adds its chunk partials in order. Every output's additions thus
// happen in one fixed order, whichever thread runs which item.
template <class T>
void sum_kernel(const T* x, int64_t outer, int64_t n, int64_t inner, double divisor, T* out) {
  const int64_t n_chunks = std::max<int64_t>(1, (n + kSumChunk - 1) / kSumChunk);
  const int64_t n_blocks = (inner + kInnerBlock - 1) / kInnerBlock;
  std::vector<double> partial(static_cast<size_t>(outer * n_chunks * inner));  // partial[a][c][i]
  const int64_t item_cost = std::min(n, kSumChunk) * std::min(inner, kInnerBlock);
  parallel_for(0, outer * n_chunks * n_blocks, rows_grain(item_cost), [&](int64_t lo, int64_t hi) {
    for (int64_t item = lo; item < hi; ++item) {
      const int64_t b = item % n_blocks, c = (item / n_blocks) % n_chunks, a = item / (n_blocks * n_chunks);
      const int64_t k0 = c * kSumChunk, k1 = std::min(n, k0 + kSumChunk);
      const int64_t i0 = b * kInnerBlock, i1 = std::min(inner, i0 + kInnerBlock);
      double* acc = partial.data() + (a * n_chunks + c) * inner;
      if (inner == 1) {
        // A plain row sum (the common case): keep the running sum in a register. Same order as below.
        double s = 0;
        for (int64_t k = k0; k < k1; ++k) s += x[a * n + k];
        acc[0] = s;
        continue;
      }
      for (int64_t i = i0; i < i1; ++i) acc[i] = 0;
      for (int64_t k = k0; k < k1; ++k) {
        const T* row = x + (a * n + k) * inner;  // x[a, k, :]
        for (int64_t i = i0; i < i1; ++i) acc[i] += row[i];
      }
    }
  });
  parallel_for(0, outer * inner, rows_grain(n_chunks), [&](int64_t lo, int64_t hi) {
    for (int64_t o = lo; o < hi; ++o) {
      const int64_t a = o / inner, i = o % inner;
      double s = 0;
      for (int64_t c = 0; c < n_chunks; ++c) s += partial[(a * n_chunks + c) * inner + i];
      // NOTE: divide in double, then round once to T (mean = sum / count, as PyTorch).
      out[o] = static_cast<T>(s / divisor);
    }
  });
}

template <class T>
bool is_nan(T v) {
  if constexpr (std::is_floating_point_v<T>) return std::isnan(v);
  return false;
}

// Whether v takes over from the running max. Strictly greater keeps the first maximum; the first NaN
// wins and is never replaced (PyTorch propagates NaN through max).
template <class T>
bool beats(T v, T best) {
  return v > best || (is_nan(v) && !is_nan(best));
}

// values[a, i] = max_k x[a, k, i] and indices[a, i] = the first k reaching it, over a dense block.
// Like sum_kernel, a work item takes a block of columns of one x[a] and walks k outermost, so it reads
// each x[a, k, block] contiguously even when the reduced dim is not the last.
template <class T>
void max_kernel(const T* x, int64_t outer, int64_t n, int64_t inner, T* values, int64_t* indices) {
  const int64_t n_blocks = (inner + kInnerBlock - 1) / kInnerBlock;
  parallel_for(0, outer * n_blocks, rows_grain(n * std::min(inner, kInnerBlock)), [&](int64_t lo, int64_t hi) {
    for (int64_t item = lo; item < hi; ++item) {
      const int64_t a = item / n_blocks, b = item % n_blocks;
      const int64_t i0 = b * kInnerBlock, i1 = std::min(inner, i0 + kInnerBlock);
      if (inner == 1) {
        // A plain row (the common case): keep the running max in registers. Same result as below.
        const T* row = x + a * n;
        T best = row[0];
        int64_t arg = 0;
        for (int64_t k = 1; k < n; ++k)
          if (beats(row[k], best)) {
            best = row[k];
            arg = k;
          }
        values[a] = best;
        indices[a] = arg;
        continue;
      }
      T* best = values + a * inner;  // out[a, :]
      int64_t* arg = indices + a * inner;
      for (int64_t i = i0; i < i1; ++i) {
        best[i] = x[a * n * inner + i];  // x[a, 0, i]
        arg[i] = 0;
      }
      for (int64_t k = 1; k < n; ++k) {
        const T* row = x + (a * n + k) * inner;  // x[a, k, :]
        for (int64_t i = i0; i < i1; ++i) {
          if (beats(row[i], best[i])) {
            best[i] = row[i];
            arg[i] = k;
          }
        }
      }
    }
  });
}

}  // namespace

std::vector<int64_t> normalize_dims(const char* op, const std::vector<int64_t>& dims, const Shape& shape) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  std::vector<int64_t> out;
  for (int64_t dim : dims) {
    const int64_t d = dim < 0 ? dim + nd : dim;
    HYDRA_CHECK(d >= 0 && d < nd, op, ": dim ", dim, " is out of range for a tensor with ", nd,
                " dims (shape ", shape_str(shape), ")");
    HYDRA_CHECK(std::find(out.begin(), out.end(), d) == out.end(), op, ": dim ", d, " appears twice in dims ",
                shape_str(dims), " for a tensor of shape ", shape_str(shape));
    out.push_back(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Shape reduced_shape(const Shape& shape, const std::vector<int64_t>& dims, bool keepdim) {
  Shape out;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    const bool reduced = std::find(dims.begin(), dims.end(), d) != dims.end();
    if (!reduced)
      out.push_back(shape[d]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

Tensor sum_raw(const Tensor& x_any, const std::vector<int64_t>& dims, bool keepdim, double divisor) {
  const int64_t nd = x_any.dim();
  HYDRA_ASSERT(std::is_sorted(dims.begin(), dims.end()) && (dims.empty() || (dims.front() >= 0 && dims.back() < nd)),
               "sum kernel needs normalized dims, got ", shape_str(dims));
  Tensor x = contiguous_raw(x_any);
  // The reduced dims must form one run [first, last) of a dense tensor to be viewed as (outer, n, inner).
  // If they are scattered, move them last (a copy), keeping both groups in order.
  int64_t first = dims.empty() ? nd : dims.front();
  int64_t last = dims.empty() ? nd : dims.back() + 1;
  if (last - first != static_cast<int64_t>(dims.size())) {
    Shape shape;
    Strides strides;
    for (int64_t d = 0; d < nd; ++d) {
      if (std::find(dims.begin(), dims.end(), d) != dims.end()) continue;
      shape.push_back(x.size(d));
      strides.push_back(x.stride(d));
    }
    for (int64_t d : dims) {
      shape.push_back(x.size(d));
      strides.push_back(x.stride(d));
    }
    x = contiguous_raw(make_view(x, shape, strides, x.offset()));  // shape: (kept..., reduced...)
    first = nd - static_cast<int64_t>(dims.size());
    last = nd;
  }
  const int64_t outer = span_numel(x.shape(), 0, first);
  const int64_t n = span_numel(x.shape(), first, last);
  const int64_t inner = span_numel(x.shape(), last, nd);
  Tensor out = empty(reduced_shape(x_any.shape(), dims, keepdim), x.dtype());
  dispatch_float(x.dtype(), "sum", [&](auto tag) {
    using T = decltype(tag);
    sum_kernel<T>(x.data<T>(), outer, n, inner, divisor, out.data<T>());
  });
  return out;
}

MaxResult max_raw(const Tensor& x_any, int64_t dim, bool keepdim) {
  HYDRA_ASSERT(dim >= 0 && dim < x_any.dim() && x_any.size(dim) > 0, "max kernel: bad dim ", dim,
               " for shape ", shape_str(x_any.shape()));
  Tensor x = contiguous_raw(x_any);
  const int64_t outer = span_numel(x.shape(), 0, dim), n = x.size(dim);
  const int64_t inner = span_numel(x.shape(), dim + 1, x.dim());
  const Shape out_shape = reduced_shape(x.shape(), {dim}, keepdim);
  MaxResult r{empty(out_shape, x.dtype()), empty(out_shape, DType::Int64)};
  dispatch_all(x.dtype(), "max", [&](auto tag) {
    using T = decltype(tag);
    max_kernel<T>(x.data<T>(), outer, n, inner, r.values.data<T>(), r.indices.data<int64_t>());
  });
  return r;
}

Tensor max_backward_raw(const Tensor& dout_any, const Tensor& indices_any, const Shape& x_shape, int64_t dim) {
  Tensor dout = contiguous_raw(dout_any), indices = contiguous_raw(indices_any);
  const int64_t nd = static_cast<int64_t>(x_shape.size());
  const int64_t outer = span_numel(x_shape, 0, dim), n = x_shape[dim], inner = span_numel(x_shape, dim + 1, nd);
  HYDRA_ASSERT(dout.numel() == outer * inner && indices.numel() == outer * inner);
  Tensor dx = zeros(x_shape, dout.dtype());
  dispatch_float(dout.dtype(), "max backward", [&](auto tag) {
    using T = decltype(tag);
    const T* pd = dout.data<T>();
    const int64_t* pi = indices.data<int64_t>();
    T* px = dx.data<T>();
    parallel_for(0, outer * inner, kGrainElementwise, [&](int64_t lo, int64_t hi) {
      for (int64_t o = lo; o < hi; ++o) {
        const int64_t a = o / inner, i = o % inner;
        px[(a * n + pi[o]) * inner + i] = pd[o];  // dx[a, argmax, i] = dout[a, i]
      }
    });
  });
  return dx;
}

}  // namespace hydra::kernels
