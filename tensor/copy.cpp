#include "tensor/copy.h"

#include <algorithm>

#include "tensor/dispatch.h"
#include "tensor/parallel.h"
#include "tensor/strided.h"

namespace hydra::kernels {

namespace {

template <class D, class S>
void copy_typed(const Tensor& dst, const Tensor& src) {
  const Shape& shape = dst.shape();
  const int64_t numel = dst.numel();
  if (numel == 0) return;
  D* dbase = static_cast<D*>(dst.impl()->storage->data);
  const S* sbase = static_cast<const S*>(src.impl()->storage->data);
  // Fast path: both dense. One flat loop.
  if (dst.is_contiguous() && src.is_contiguous()) {
    D* d = dbase + dst.offset();
    const S* s = sbase + src.offset();
    parallel_for(0, numel, kGrainElementwise, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) d[i] = static_cast<D>(s[i]);
    });
    return;
  }
  if (shape.empty()) {
    dbase[dst.offset()] = static_cast<D>(sbase[src.offset()]);
    return;
  }
  // General path: rows of the last dim; each task finds its first row's offsets by division.
  const int64_t inner = shape.back();
  const int64_t rows = numel / inner;
  const int64_t ds = dst.strides().back(), ss = src.strides().back();
  const int64_t grain = std::max<int64_t>(1, kGrainElementwise / std::max<int64_t>(inner, 1));
  parallel_for(0, rows, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      D* d = dbase + row_offset(shape, dst.strides(), dst.offset(), r);
      const S* s = sbase + row_offset(shape, src.strides(), src.offset(), r);
      for (int64_t i = 0; i < inner; ++i) d[i * ds] = static_cast<D>(s[i * ss]);
    }
  });
}

}  // namespace

void copy_into(const Tensor& dst, const Tensor& src) {
  HYDRA_CHECK(dst.shape() == src.shape(), "copy: destination shape ", shape_str(dst.shape()),
              " differs from source shape ", shape_str(src.shape()));
  dispatch_all(dst.dtype(), "copy", [&](auto dtag) {
    dispatch_all(src.dtype(), "copy", [&](auto stag) { copy_typed<decltype(dtag), decltype(stag)>(dst, src); });
  });
}

Tensor clone(const Tensor& t) {
  Tensor out = empty(t.shape(), t.dtype());
  copy_into(out, t);
  return out;
}

Tensor contiguous_raw(const Tensor& t) { return t.is_contiguous() ? t : clone(t); }

Tensor cast_raw(const Tensor& t, DType dtype) {
  Tensor out = empty(t.shape(), dtype);
  copy_into(out, t);
  return out;
}

}  // namespace hydra::kernels
