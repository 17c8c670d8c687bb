// Printing: "tensor(shape=[2, 3], dtype=float32)" then nested rows, eliding the middle of long dims
// ("...") so a 100k-element tensor prints in a screenful.
#include <iomanip>
#include <sstream>

#include "tensor/dispatch.h"
#include "tensor/tensor.h"

namespace hydra {

namespace {

template <class T>
void print_dim(std::ostream& os, const T* base, const Tensor& t, int64_t d, int64_t off, int64_t edge,
               int indent) {
  const int64_t n = t.shape()[d];
  const int64_t st = t.strides()[d];
  const bool last = d == t.dim() - 1;
  os << "[";
  for (int64_t i = 0; i < n; ++i) {
    if (n > 2 * edge && i == edge) {
      os << (last ? "..., " : "...,\n" + std::string(indent + 1, ' '));
      i = n - edge - 1;
      continue;
    }
    if (last) {
      if constexpr (std::is_floating_point_v<T>)
        os << std::setprecision(6) << std::defaultfloat << base[off + i * st];
      else
        os << base[off + i * st];
    } else {
      print_dim(os, base, t, d + 1, off + i * st, edge, indent + 1);
    }
    if (i + 1 < n) os << (last ? ", " : ",\n" + std::string(indent + 1, ' '));
  }
  os << "]";
}

}  // namespace

std::string to_string(const Tensor& t, int64_t edge_items) {
  if (!t.defined()) return "tensor(undefined)";
  std::ostringstream os;
  os << "tensor(shape=" << shape_str(t.shape()) << ", dtype=" << dtype_name(t.dtype());
  if (t.requires_grad()) os << ", requires_grad";
  os << ")\n";
  if (t.is_meta()) return os.str() + "(meta: shape only, no data)";
  dispatch_all(t.dtype(), "print", [&](auto tag) {
    using T = decltype(tag);
    const T* base = t.storage_data<T>();
    if (t.dim() == 0)
      os << base[t.offset()];
    else
      print_dim(os, base, t, 0, t.offset(), edge_items, 0);
  });
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << to_string(t); }

}  // namespace hydra
