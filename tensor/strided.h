// Walking the elements of a strided tensor in row-major order.
//
// These are the serial building blocks; tensor/copy.cpp parallelises the same walk over rows.
#pragma once

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

// Offset of the first element of row `row`, where a row is one index of all dims but the last.
inline int64_t row_offset(const Shape& shape, const Strides& strides, int64_t offset, int64_t row) {
  int64_t off = offset;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d) {
    off += (row % shape[d]) * strides[d];
    row /= shape[d];
  }
  return off;
}

}  // namespace hydra
