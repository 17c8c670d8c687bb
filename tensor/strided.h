// Walking the elements of strided tensors.
//
//   for_each_offset   every element offset of one layout, serially, in row-major order (reference walks,
//                     gathering offsets once).
//   simplify_layouts  the dims of a (dst, src) pair of layouts reduced for a copy: size-1 dims dropped,
//                     dims ordered by dst stride, neighbours contiguous in both merged.
//   PairCursor        a row-major multi-index that tracks its offsets in two layouts; it starts anywhere
//                     (one division per dim) and then steps by additions, so each parallel task pays the
//                     divisions once, not once per row.
//
// tensor/copy.cpp builds its one copy kernel from the last two. Strides are never negative (tensor.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "tensor/shape.h"

namespace hydra {

// Calls f(element_offset) for every element, in row-major order of `shape`.
template <class F>
void for_each_offset(const Shape& shape, const Strides& strides, int64_t offset, F&& f) {
  int64_t numel = shape_numel(shape);
  if (numel == 0) return;
  const int64_t nd = static_cast<int64_t>(shape.size());
  if (nd == 0) {
    f(offset);
    return;
  }
  std::vector<int64_t> index(nd, 0);
  const int64_t inner = shape[nd - 1], inner_stride = strides[nd - 1];
  int64_t rows = numel / inner;
  int64_t base = offset;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < inner; ++i) f(base + i * inner_stride);
    // Advance the multi-index over the outer dims (odometer style) and update the base offset.
    for (int64_t d = nd - 2; d >= 0; --d) {
      if (++index[d] < shape[d]) {
        base += strides[d];
        break;
      }
      base -= (shape[d] - 1) * strides[d];
      index[d] = 0;
    }
  }
}

// One shape seen through two layouts: element (i0, i1, ...) is at Σ i_k * dst[k] in one and Σ i_k * src[k]
// in the other.
struct PairLayout {
  Shape shape;
  Strides dst, src;
};

// The same set of (dst offset, src offset) pairs as (shape, dst_strides, src_strides), described with
// as few dims as possible, for a copy that may visit elements in any order:
//   1. size-1 dims are dropped (their strides never matter);
//   2. dims are ordered by dst stride, largest first, so the last dim is the one dst is densest along
//      (the identity for a row-major dst; for a non-overlapping dst the strides are distinct);
//   3. neighbouring dims (a, a+1) with stride[a] == stride[a+1] * shape[a+1] in both layouts are merged:
//      a dense tensor becomes one dim, a narrowed one rows of the narrowed width, and a stride-0
//      (expanded) source merges wherever its dims are all stride 0.
// A tensor with one element comes back with no dims. Requires shape_numel(shape) > 0.
inline PairLayout simplify_layouts(const Shape& shape, const Strides& dst_strides, const Strides& src_strides) {
  std::vector<size_t> dims;
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] != 1) dims.push_back(d);
  std::stable_sort(dims.begin(), dims.end(), [&](size_t a, size_t b) { return dst_strides[a] > dst_strides[b]; });
  PairLayout out;
  for (size_t d : dims) {
    if (!out.shape.empty() && out.dst.back() == dst_strides[d] * shape[d] &&
        out.src.back() == src_strides[d] * shape[d]) {
      // The previous (outer) dim steps exactly over all of d in both layouts: fold d into it.
      out.shape.back() *= shape[d];
      out.dst.back() = dst_strides[d];
      out.src.back() = src_strides[d];
      continue;
    }
    out.shape.push_back(shape[d]);
    out.dst.push_back(dst_strides[d]);
    out.src.push_back(src_strides[d]);
  }
  return out;
}

// A row-major multi-index over `shape` and the offsets it maps to through strides `a` and `b`.
//   PairCursor at(shape, a, b, first);   // at.index is the first-th index in row-major order
//   ... use at.a, at.b, at.index ...; at.next();
// next() past the last index wraps to all zeros.
struct PairCursor {
  const Shape& shape;
  const Strides& stride_a;
  const Strides& stride_b;
  std::vector<int64_t> index;
  int64_t a = 0, b = 0;

  PairCursor(const Shape& shape_, const Strides& a_, const Strides& b_, int64_t linear)
      : shape(shape_), stride_a(a_), stride_b(b_), index(unravel_index(linear, shape_)) {
    for (size_t d = 0; d < shape.size(); ++d) {
      a += index[d] * stride_a[d];
      b += index[d] * stride_b[d];
    }
  }

  void next() {
    for (size_t d = shape.size(); d-- > 0;) {
      if (++index[d] < shape[d]) {
        a += stride_a[d];
        b += stride_b[d];
        return;
      }
      a -= (shape[d] - 1) * stride_a[d];
      b -= (shape[d] - 1) * stride_b[d];
      index[d] = 0;
    }
  }
};

}  // namespace hydra
