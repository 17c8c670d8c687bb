// Differentiable joins: concat along an existing dim, stack along a new one. The forward kernel is
// copy_into (tensor/copy.h: parallel, any layout) into one slice of the output per input; the backward
// hands each input the matching slice of the gradient as a view (narrow / select), with no copy.
#include "autograd/ops_join.h"

#include "autograd/ops_view.h"
#include "autograd/record.h"
#include "tensor/copy.h"

namespace hydra {

namespace {

// Elements start..start+length-1 of dim, as a plain view (no autograd): the slot one input fills.
Tensor narrow_raw(const Tensor& t, int64_t dim, int64_t start, int64_t length) {
  Shape shape = t.shape();
  shape[dim] = length;
  return make_view(t, shape, t.strides(), t.offset() + start * t.strides()[dim]);
}

// A size-1 dim inserted at dim, as a plain view (no autograd): how stack sees each input.
Tensor unsqueeze_raw(const Tensor& t, int64_t dim) {
  Shape shape = t.shape();
  Strides strides = t.strides();
  shape.insert(shape.begin() + dim, 1);
  strides.insert(strides.begin() + dim, 0);  // never stepped along: any stride would do
  return make_view(t, shape, strides, t.offset());
}

// The join itself: a new tensor of shape `out_shape` whose dim `dim` holds xs[0], xs[1], ... in order.
// Shapes were checked by the caller.
Tensor concat_raw(const std::vector<Tensor>& xs, const Shape& out_shape, int64_t dim) {
  Tensor out = empty(out_shape, xs[0].dtype());
  int64_t start = 0;
  for (const Tensor& x : xs) {
    kernels::copy_into(narrow_raw(out, dim, start, x.size(dim)), x);
    start += x.size(dim);
  }
  return out;
}

// Checks what concat and stack both need: a non-empty list of defined tensors of one dtype.
void check_list(const char* op, const std::vector<Tensor>& xs) {
  HYDRA_CHECK(!xs.empty(), op, ": needs at least one tensor, got an empty list");
  for (size_t k = 0; k < xs.size(); ++k) {
    HYDRA_CHECK(xs[k].defined(), op, ": tensor ", k, " is undefined");
    HYDRA_CHECK(xs[k].dtype() == xs[0].dtype(), op, ": tensor ", k, " has dtype ", dtype_name(xs[k].dtype()),
                " but tensor 0 has dtype ", dtype_name(xs[0].dtype()));
  }
}

}  // namespace

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  check_list("concat", xs);
  const Shape& first = xs[0].shape();
  const int64_t d = normalize_dim("concat", dim, xs[0].dim());
  std::vector<int64_t> sizes;
  Shape out_shape = first;
  out_shape[d] = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    Shape s = xs[k].shape();
    bool ok = s.size() == first.size();
    if (ok) {
      s[d] = first[d];  // only dim d may differ
      ok = s == first;
    }
    HYDRA_CHECK(ok, "concat: tensor ", k, " has shape ", shape_str(xs[k].shape()), " but tensor 0 has shape ",
                shape_str(first), "; shapes must match except along dim ", d);
    sizes.push_back(xs[k].size(d));
    out_shape[d] += sizes.back();
  }
  Tensor out = concat_raw(xs, out_shape, d);
  return record("concat", out, xs, [d, sizes](const Tensor& dout, const Needs& needs) {
    // forward: out[.., start_k : start_k + sizes[k], ..] = xs[k] along d, so dxs[k] is that slice of dout
    Grads g(sizes.size());
    int64_t start = 0;
    for (size_t k = 0; k < sizes.size(); ++k) {
      if (needs[k]) g[k] = narrow(dout, d, start, sizes[k]);
      start += sizes[k];
    }
    return g;
  });
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  check_list("stack", xs);
  const Shape& first = xs[0].shape();
  const int64_t d = normalize_dim("stack", dim, xs[0].dim() + 1);  // dim may be ndim: a new last dim
  for (size_t k = 0; k < xs.size(); ++k)
    HYDRA_CHECK(xs[k].shape() == first, "stack: tensor ", k, " has shape ", shape_str(xs[k].shape()),
                " but tensor 0 has shape ", shape_str(first), "; stack needs equal shapes");
  Shape out_shape = first;
  out_shape.insert(out_shape.begin() + d, static_cast<int64_t>(xs.size()));  // shape: first with n at d
  std::vector<Tensor> slices;
  for (const Tensor& x : xs) slices.push_back(unsqueeze_raw(x, d));  // shape: first with 1 at d
  Tensor out = concat_raw(slices, out_shape, d);
  return record("stack", out, xs, [d](const Tensor& dout, const Needs& needs) {
    // forward: out[.., k, ..] = xs[k] at position k of the new dim d, so dxs[k] = dout[.., k, ..]
    Grads g(needs.size());
    for (size_t k = 0; k < needs.size(); ++k)
      if (needs[k]) g[k] = select(dout, d, static_cast<int64_t>(k));
    return g;
  });
}

}  // namespace hydra
