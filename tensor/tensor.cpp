#include "tensor/tensor.h"


#include "tensor/allocator.h"
#include "tensor/dispatch.h"
#include "tensor/strided.h"

namespace hydra {

std::shared_ptr<Storage> Storage::allocate(size_t nbytes) {
  auto s = std::make_shared<Storage>();
  void* p = allocate_bytes(nbytes);  // tensor/allocator.h: large blocks are reused, not re-faulted
  s->data = p;
  s->nbytes = nbytes;
  s->owner = std::shared_ptr<void>(p, [nbytes](void* q) { free_bytes(q, nbytes); });
  return s;
}

int64_t Tensor::size(int64_t d) const { return shape()[normalize_dim("size", d, dim())]; }
int64_t Tensor::stride(int64_t d) const { return strides()[normalize_dim("stride", d, dim())]; }
int64_t Tensor::numel() const { return shape_numel(shape()); }

bool Tensor::is_contiguous() const {
  const auto& sh = shape();
  const auto& st = strides();
  if (shape_numel(sh) == 0) return true;  // no elements: every layout is dense
  int64_t expected = 1;
  for (size_t i = sh.size(); i-- > 0;) {
    if (sh[i] == 1) continue;
    if (st[i] != expected) return false;
    expected *= sh[i];
  }
  return true;
}

bool Tensor::is_meta() const { return checked().storage->is_meta; }

void* Tensor::raw_data() const {
  const auto& im = checked();
  HYDRA_CHECK(!im.storage->is_meta, "a meta tensor of shape ", shape_str(im.shape),
              " has no data (it was built with init_device \"meta\"; materialize it first)");
  return static_cast<char*>(im.storage->data) + im.offset * static_cast<int64_t>(dtype_size(im.dtype));
}

bool Tensor::shares_storage_with(const Tensor& other) const {
  return defined() && other.defined() && impl_->storage == other.impl_->storage;
}

template <class T>
T Tensor::item() const {
  HYDRA_CHECK(numel() == 1, "item(): expected a tensor with one element, got shape ", shape_str(shape()));
  return dispatch_all(dtype(), "item", [&](auto tag) {
    using S = decltype(tag);
    return static_cast<T>(*static_cast<const S*>(raw_data()));
  });
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  std::vector<T> out;
  out.reserve(static_cast<size_t>(numel()));
  dispatch_all(dtype(), "to_vector", [&](auto tag) {
    using S = decltype(tag);
    const S* base = storage_data<S>();
    for_each_offset(shape(), strides(), offset(), [&](int64_t off) { out.push_back(static_cast<T>(base[off])); });
  });
  return out;
}

#define HYDRA_INSTANTIATE(T)                            \
  template T Tensor::item<T>() const;                   \
  template std::vector<T> Tensor::to_vector<T>() const;
HYDRA_INSTANTIATE(float)
HYDRA_INSTANTIATE(double)
HYDRA_INSTANTIATE(int32_t)
HYDRA_INSTANTIATE(int64_t)
#undef HYDRA_INSTANTIATE

Tensor meta(const Shape& shape, DType dtype) {
  auto st = std::make_shared<Storage>();
  st->is_meta = true;
  st->nbytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  auto im = std::make_shared<TensorImpl>();
  im->storage = st;
  im->shape = shape;
  im->strides = contiguous_strides(shape);
  im->dtype = dtype;
  return Tensor(im);
}

Tensor make_view(const Tensor& base, const Shape& shape, const Strides& strides, int64_t offset) {
  HYDRA_ASSERT(shape.size() == strides.size());
  // The furthest element this view can reach must lie inside the storage.
  int64_t numel = shape_numel(shape);
  if (numel > 0) {
    int64_t last = offset;
    for (size_t i = 0; i < shape.size(); ++i) last += (shape[i] - 1) * strides[i];
    int64_t capacity = static_cast<int64_t>(base.impl()->storage->nbytes / dtype_size(base.dtype()));
    HYDRA_ASSERT(offset >= 0 && last < capacity, "view ", shape_str(shape), " at offset ", offset,
                 " exceeds storage of ", capacity, " elements");
  }
  auto im = std::make_shared<TensorImpl>();
  im->storage = base.impl()->storage;
  im->shape = shape;
  im->strides = strides;
  im->offset = offset;
  im->dtype = base.dtype();
  return Tensor(im);
}

}  // namespace hydra
