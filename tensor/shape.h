// Shapes and strides: plain vectors of int64, row-major, PyTorch dimension order.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

namespace hydra {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

// Number of elements of a shape (1 for a 0-d scalar). Throws on negative sizes or int64 overflow.
int64_t shape_numel(const Shape& shape);

// Row-major strides for a dense tensor of this shape.
Strides contiguous_strides(const Shape& shape);

// "[2, 3, 4]"
std::string shape_str(const Shape& shape);

// The multi-index of element `flat` in row-major order: unravel_index(5, {2, 3}) == {1, 2}.
// 0 <= flat < shape_numel(shape).
Shape unravel_index(int64_t flat, const Shape& shape);

// Turns a possibly negative dim (-1 = last) into 0..ndim-1, or throws naming op, dim and ndim.
int64_t normalize_dim(const char* op, int64_t dim, int64_t ndim);

inline std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << shape_str(s); }

}  // namespace hydra
