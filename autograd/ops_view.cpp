// Differentiable views. Each forward computes a new (shape, strides, offset) over the same storage;
// each backward sends the output gradient back to the input's shape: the inverse view for reshapes and
// permutes, a zero tensor with the gradient written into the viewed region for narrow/select, and a sum
// over the repeated dims for expand.
#include "autograd/ops_view.h"

#include <algorithm>

#include "autograd/ops_reduce.h"
#include "autograd/record.h"
#include "tensor/copy.h"

namespace hydra {

namespace {

// Resolves one -1 in `shape` so that it holds numel elements.
Shape infer_shape(const char* op, const Shape& in_shape, Shape shape) {
  const int64_t numel = shape_numel(in_shape);
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      HYDRA_CHECK(infer_at < 0, op, ": only one dim may be -1, got ", shape_str(shape));
      infer_at = static_cast<int64_t>(i);
    } else {
      HYDRA_CHECK(shape[i] >= 0, op, ": invalid size ", shape[i], " in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer_at >= 0) {
    HYDRA_CHECK(known != 0 && numel % known == 0, op, ": cannot reshape ", shape_str(in_shape), " into ",
                shape_str(shape));
    shape[infer_at] = numel / known;
  }
  HYDRA_CHECK(shape_numel(shape) == numel, op, ": cannot reshape ", shape_str(in_shape), " (", numel,
              " elements) into ", shape_str(shape), " (", shape_numel(shape), " elements)");
  return shape;
}

// The raw views (no autograd), shared by forwards and backwards.
Tensor narrow_view(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  Shape shape = x.shape();
  shape[dim] = length;
  return make_view(x, shape, x.strides(), x.offset() + start * x.strides()[dim]);
}

Tensor select_view(const Tensor& x, int64_t dim, int64_t index) {
  Shape shape = x.shape();
  Strides strides = x.strides();
  int64_t offset = x.offset() + index * strides[dim];
  shape.erase(shape.begin() + dim);
  strides.erase(strides.begin() + dim);
  return make_view(x, shape, strides, offset);
}

}  // namespace

Tensor view(const Tensor& x, const Shape& requested) {
  Shape shape = infer_shape("view", x.shape(), requested);
  HYDRA_CHECK(x.is_contiguous(), "view: a tensor of shape ", shape_str(x.shape()), " with strides ",
              shape_str(x.strides()), " is not dense; it cannot be viewed as ", shape_str(shape),
              " (use reshape, which copies)");
  Tensor out = make_view(x, shape, contiguous_strides(shape), x.offset());
  Shape in_shape = x.shape();
  return record("view", out, {x}, [in_shape](const Tensor& dout, const Needs&) {
    return Grads{reshape(dout, in_shape)};  // forward: out = x viewed as `shape`
  });
}

Tensor reshape(const Tensor& x, const Shape& requested) {
  Shape shape = infer_shape("reshape", x.shape(), requested);  // errors name reshape, not view
  return x.is_contiguous() ? view(x, shape) : view(contiguous(x), shape);
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  const int64_t nd = x.dim();
  HYDRA_CHECK(static_cast<int64_t>(dims.size()) == nd, "permute: ", dims.size(), " dims given for a tensor of shape ",
              shape_str(x.shape()));
  std::vector<int64_t> inverse(nd, -1);
  Shape shape(nd);
  Strides strides(nd);
  for (int64_t i = 0; i < nd; ++i) {
    int64_t d = normalize_dim("permute", dims[i], nd);
    HYDRA_CHECK(inverse[d] < 0, "permute: dim ", d, " repeated in ", shape_str(dims));
    inverse[d] = i;
    shape[i] = x.shape()[d];
    strides[i] = x.strides()[d];
  }
  Tensor out = make_view(x, shape, strides, x.offset());
  return record("permute", out, {x}, [inverse](const Tensor& dout, const Needs&) {
    return Grads{permute(dout, inverse)};  // forward: out dim i = x dim dims[i]; undo it
  });
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  const int64_t nd = x.dim();
  int64_t a = normalize_dim("transpose", dim0, nd), b = normalize_dim("transpose", dim1, nd);
  std::vector<int64_t> dims(nd);
  for (int64_t i = 0; i < nd; ++i) dims[i] = i;
  std::swap(dims[a], dims[b]);
  return permute(x, dims);
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  const int64_t d = normalize_dim("narrow", dim, x.dim());
  const int64_t size = x.shape()[d];
  HYDRA_CHECK(start >= 0 && length >= 0 && start + length <= size, "narrow: elements [", start, ", ",
              start + length, ") of dim ", d, " are out of range for shape ", shape_str(x.shape()));
  Tensor out = narrow_view(x, d, start, length);
  Shape in_shape = x.shape();
  DType dtype = x.dtype();
  return record("narrow", out, {x}, [in_shape, dtype, d, start, length](const Tensor& dout, const Needs&) {
    // forward: out = x[start:start+length] along d, so dx is dout there and 0 elsewhere
    Tensor dx = zeros(in_shape, dtype);
    kernels::copy_into(narrow_view(dx, d, start, length), dout);
    return Grads{dx};
  });
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end) {
  const int64_t d = normalize_dim("slice", dim, x.dim());
  const int64_t size = x.shape()[d];
  // Python's rules: negative indices count from the end, then both ends are clamped to [0, size].
  if (start < 0) start += size;
  if (end < 0) end += size;
  start = std::clamp<int64_t>(start, 0, size);
  end = std::clamp<int64_t>(end, start, size);
  return narrow(x, d, start, end - start);
}

Tensor select(const Tensor& x, int64_t dim, int64_t index) {
  const int64_t d = normalize_dim("select", dim, x.dim());
  const int64_t size = x.shape()[d];
  const int64_t i = index < 0 ? index + size : index;
  HYDRA_CHECK(i >= 0 && i < size, "select: index ", index, " is out of range for dim ", d, " of shape ",
              shape_str(x.shape()));
  Tensor out = select_view(x, d, i);
  Shape in_shape = x.shape();
  DType dtype = x.dtype();
  return record("select", out, {x}, [in_shape, dtype, d, i](const Tensor& dout, const Needs&) {
    // forward: out = x[i] along d, so dx is dout at i and 0 elsewhere
    Tensor dx = zeros(in_shape, dtype);
    kernels::copy_into(select_view(dx, d, i), dout);
    return Grads{dx};
  });
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  const int64_t nd = x.dim();
  // The new dim can go anywhere in 0..nd, so -1 means "after the last dim" (nd), as in PyTorch.
  const int64_t d = normalize_dim("unsqueeze", dim < 0 ? dim + nd + 1 : dim, nd + 1);
  Shape shape = x.shape();
  Strides strides = x.strides();
  // Any stride is valid for a size-1 dim; this one keeps a dense tensor dense.
  int64_t stride = d < nd ? shape[d] * strides[d] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, stride);
  Tensor out = make_view(x, shape, strides, x.offset());
  return record("unsqueeze", out, {x}, [d](const Tensor& dout, const Needs&) {
    return Grads{squeeze(dout, d)};  // forward: a size-1 dim inserted at d
  });
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  const int64_t d = normalize_dim("squeeze", dim, x.dim());
  HYDRA_CHECK(x.shape()[d] == 1, "squeeze: dim ", d, " of shape ", shape_str(x.shape()), " has size ",
              x.shape()[d], ", expected 1");
  Tensor out = select_view(x, d, 0);
  return record("squeeze", out, {x}, [d](const Tensor& dout, const Needs&) {
    return Grads{unsqueeze(dout, d)};  // forward: size-1 dim d removed
  });
}

Tensor expand(const Tensor& x, const Shape& target) {
  const int64_t nd = x.dim(), nt = static_cast<int64_t>(target.size());
  HYDRA_CHECK(nt >= nd, "expand: cannot expand shape ", shape_str(x.shape()), " to ", shape_str(target),
              " (fewer dims)");
  const int64_t lead = nt - nd;  // new leading dims
  Shape shape(nt);
  Strides strides(nt);
  std::vector<int64_t> summed;  // dims of the output that repeat the input: the backward sums over them
  for (int64_t i = 0; i < nt; ++i) {
    if (i < lead) {
      HYDRA_CHECK(target[i] >= 0, "expand: new leading dim ", i, " of ", shape_str(target), " cannot be -1");
      shape[i] = target[i];
      strides[i] = 0;
      summed.push_back(i);
      continue;
    }
    const int64_t in_size = x.shape()[i - lead];
    const int64_t want = target[i] == -1 ? in_size : target[i];
    if (want == in_size) {
      shape[i] = in_size;
      strides[i] = x.strides()[i - lead];
    } else {
      HYDRA_CHECK(in_size == 1 && want >= 0, "expand: cannot expand shape ", shape_str(x.shape()), " to ",
                  shape_str(target), " (dim ", i, ": size ", in_size, " is not 1)");
      shape[i] = want;
      strides[i] = 0;
      summed.push_back(i);
    }
  }
  Tensor out = make_view(x, shape, strides, x.offset());
  Shape in_shape = x.shape();
  return record("expand", out, {x}, [summed, in_shape](const Tensor& dout, const Needs&) {
    // forward: every input element is read at each index of the repeated dims, so its gradient is
    // the sum of dout over them
    if (summed.empty()) return Grads{dout};
    return Grads{reshape(sum(dout, summed, /*keepdim=*/true), in_shape)};
  });
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) { return expand(x, shape); }

Tensor contiguous(const Tensor& x) {
  Tensor out = kernels::contiguous_raw(x);
  return record("contiguous", out, {x}, [](const Tensor& dout, const Needs&) {
    return Grads{dout};  // forward: same values, dense layout
  });
}

Tensor clone(const Tensor& x) {
  Tensor out = kernels::clone_raw(x);
  return record("clone", out, {x}, [](const Tensor& dout, const Needs&) {
    return Grads{dout};  // forward: out = x (a copy)
  });
}

}  // namespace hydra
