// Tensor creation: empty/zeros/ones/full/arange/from_vector/from_blob.
#include <cmath>

#include "tensor/dispatch.h"
#include "tensor/parallel.h"
#include "tensor/tensor.h"

namespace hydra {

Tensor empty(const Shape& shape, DType dtype) {
  auto im = std::make_shared<TensorImpl>();
  int64_t n = shape_numel(shape);
  im->storage = Storage::allocate(static_cast<size_t>(n) * dtype_size(dtype));
  im->shape = shape;
  im->strides = contiguous_strides(shape);
  im->dtype = dtype;
  return Tensor(im);
}

Tensor full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  dispatch_all(dtype, "full", [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    const T v = static_cast<T>(value);
    parallel_for(0, t.numel(), kGrainElementwise, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) p[i] = v;
    });
  });
  return t;
}

Tensor zeros(const Shape& shape, DType dtype) { return full(shape, 0.0, dtype); }
Tensor ones(const Shape& shape, DType dtype) { return full(shape, 1.0, dtype); }

Tensor arange(int64_t end, DType dtype) { return arange(0, end, 1, dtype); }

Tensor arange(int64_t start, int64_t end, int64_t step, DType dtype) {
  HYDRA_CHECK(step != 0, "arange: step must not be 0");
  int64_t n = 0;
  if (step > 0 && end > start) n = (end - start + step - 1) / step;
  if (step < 0 && end < start) n = (start - end + (-step) - 1) / (-step);
  Tensor t = empty({n}, dtype);
  dispatch_all(dtype, "arange", [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(start + i * step);
  });
  return t;
}

template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
  HYDRA_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
              " values do not fill shape ", shape_str(shape), " (", shape_numel(shape), " elements)");
  Tensor t = empty(shape, dtype_of<T>());
  std::copy(values.begin(), values.end(), t.data<T>());
  return t;
}
template Tensor from_vector<float>(const std::vector<float>&, const Shape&);
template Tensor from_vector<double>(const std::vector<double>&, const Shape&);
template Tensor from_vector<int32_t>(const std::vector<int32_t>&, const Shape&);
template Tensor from_vector<int64_t>(const std::vector<int64_t>&, const Shape&);

Tensor from_blob(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> keep_alive) {
  HYDRA_CHECK(data != nullptr || shape_numel(shape) == 0, "from_blob: null data for shape ", shape_str(shape));
  auto st = std::make_shared<Storage>();
  st->data = data;
  st->nbytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  st->owner = std::move(keep_alive);
  auto im = std::make_shared<TensorImpl>();
  im->storage = st;
  im->shape = shape;
  im->strides = contiguous_strides(shape);
  im->dtype = dtype;
  return Tensor(im);
}

}  // namespace hydra
