// Tensor: a shape, strides and an offset into shared storage, plus the autograd fields.
//
// A Tensor is a cheap handle (a shared pointer to a TensorImpl), like torch.Tensor: copying a Tensor
// copies the handle, not the data. Views (reshape, permute, narrow, select, expand — see
// autograd/ops_view.h) share the storage and differ only in shape/strides/offset. Data is copied only by
// ops that produce new values, and by contiguous() when the layout is not already dense row-major.
//
// Element (i0, i1, ...) lives at  data_base + (offset + Σ i_k * stride_k) * dtype_size.
// Strides are in elements, may be 0 (expand) and are never negative.
//
// The autograd fields (requires_grad, grad, grad_fn) and methods are described in autograd/engine.h.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/error.h"
#include "tensor/shape.h"

namespace hydra {

struct Node;  // autograd/node.h

// A block of memory. It either owns its bytes (allocate) or points into memory that someone else owns
// (a memory-mapped file, a caller's buffer); `owner` keeps that memory alive for as long as any view does.
struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  std::shared_ptr<void> owner;
  bool is_meta = false;  // no memory behind it (see Tensor::is_meta)

  // 64-byte aligned, uninitialised memory.
  static std::shared_ptr<Storage> allocate(size_t nbytes);
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;
  int64_t offset = 0;
  DType dtype = DType::Float32;

  // Autograd. A leaf (grad_fn == nullptr) with requires_grad receives .grad; a non-leaf with
  // requires_grad is the output of a recorded op and grad_fn is the node that computes its inputs' grads.
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;
  std::shared_ptr<Node> grad_fn;
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

  // ---- layout ----
  const Shape& shape() const { return checked().shape; }
  const Strides& strides() const { return checked().strides; }
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t size(int64_t d) const;    // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t offset() const { return checked().offset; }
  int64_t numel() const;
  DType dtype() const { return checked().dtype; }
  bool is_contiguous() const;       // dense row-major (size-1 dims may have any stride)
  // A meta tensor has a shape and dtype but no memory (a model built on the "meta" device, to count
  // and inspect parameters without allocating them). Reading its data is an error.
  bool is_meta() const;

  // ---- data access ----
  // Pointer to element (0, 0, ..., 0). The dtype must match T.
  template <class T>
  T* data() const {
    HYDRA_CHECK(dtype() == dtype_of<T>(), "tensor of dtype ", dtype(), " accessed as ",
                dtype_name(dtype_of<T>()));
    return static_cast<T*>(raw_data());
  }
  void* raw_data() const;
  // Pointer to the start of the storage (element offset 0, not this view's first element), for kernels
  // that walk a strided view with offset() and strides(). Same dtype and meta checks as data<T>().
  template <class T>
  T* storage_data() const {
    return data<T>() - offset();
  }
  // The single value of a one-element tensor, converted to T.
  template <class T>
  T item() const;
  // All values in row-major order, converted to T (works for any layout).
  template <class T>
  std::vector<T> to_vector() const;
  // True when both tensors view the same storage.
  bool shares_storage_with(const Tensor& other) const;

  // ---- autograd ----
  // Declared here so that code reads as in PyTorch (loss.backward(), w.grad()); every method of this
  // section is defined in autograd/engine.cpp, next to the engine they drive (autograd/engine.h).
  bool requires_grad() const { return checked().requires_grad; }
  // Marks a leaf as needing a gradient. Only float tensors can; a non-leaf cannot be changed.
  Tensor& set_requires_grad(bool on = true);
  bool is_leaf() const { return checked().grad_fn == nullptr; }
  const std::shared_ptr<Node>& grad_fn() const { return checked().grad_fn; }
  // The accumulated gradient of a leaf (undefined until a backward reaches it).
  Tensor grad() const;
  void zero_grad() const;  // drops the accumulated gradient
  // Back-propagates from this scalar (grad 1) or with the given upstream gradient of the same shape.
  void backward() const;
  void backward(const Tensor& grad_output) const;
  // Same storage and layout, no autograd history, requires_grad false.
  Tensor detach() const;

 private:
  const TensorImpl& checked() const {
    HYDRA_CHECK(impl_ != nullptr, "operation on an undefined tensor");
    return *impl_;
  }
  std::shared_ptr<TensorImpl> impl_;
};

// ---- creation (tensor/creation.cpp) ----
Tensor empty(const Shape& shape, DType dtype = DType::Float32);
Tensor zeros(const Shape& shape, DType dtype = DType::Float32);
Tensor ones(const Shape& shape, DType dtype = DType::Float32);
Tensor full(const Shape& shape, double value, DType dtype = DType::Float32);
// 0, 1, ..., end-1 and start, start+step, ... < end (step may be negative).
Tensor arange(int64_t end, DType dtype = DType::Int64);
Tensor arange(int64_t start, int64_t end, int64_t step, DType dtype = DType::Int64);
// Copies the values; values.size() must equal the shape's element count.
template <class T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape);
// Wraps memory without copying (e.g. a memory-mapped weight file). `keep_alive` is held by the storage so
// the memory outlives every view of it; pass nullptr when the caller guarantees the lifetime.
Tensor from_blob(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> keep_alive = nullptr);
// Shape and dtype only, no memory: see Tensor::is_meta.
Tensor meta(const Shape& shape, DType dtype = DType::Float32);
// A new tensor sharing `base`'s storage with the given layout (bounds are checked). No autograd.
Tensor make_view(const Tensor& base, const Shape& shape, const Strides& strides, int64_t offset);

// Prints "tensor(shape=[2, 3], dtype=float32)" and the values, eliding the middle of long dims.
std::ostream& operator<<(std::ostream& os, const Tensor& t);
std::string to_string(const Tensor& t, int64_t edge_items = 3);

}  // namespace hydra
