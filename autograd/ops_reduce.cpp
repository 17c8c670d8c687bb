// Differentiable reductions: each forward calls its kernel (tensor/reduce.h) and records its backward
// rule directly below it. The backward of a sum spreads the gradient back over the reduced dims with
// views (unsqueeze + expand: no copy until someone writes it).
#include "autograd/ops_reduce.h"

#include <numeric>

#include "autograd/ops_elementwise.h"
#include "autograd/ops_view.h"
#include "autograd/record.h"
#include "tensor/reduce.h"

namespace hydra {

namespace {

void check_float(const char* op, const Tensor& x) {
  HYDRA_CHECK(is_floating(x.dtype()), op, ": expected a float32 or float64 tensor, got ", dtype_name(x.dtype()),
              " of shape ", shape_str(x.shape()));
}

std::vector<int64_t> all_dims(const Tensor& x) {
  std::vector<int64_t> dims(static_cast<size_t>(x.dim()));
  std::iota(dims.begin(), dims.end(), 0);
  return dims;
}

// dout has the reduction's output shape; returns it viewed with x's shape (size-1 reduced dims put
// back, then repeated by a stride-0 expand). dims are normalized and sorted.
Tensor spread_back(const Tensor& dout, const std::vector<int64_t>& dims, bool keepdim, const Shape& x_shape) {
  Tensor g = dout;
  if (!keepdim)
    for (int64_t d : dims) g = unsqueeze(g, d);  // ascending, so each d is already its final position
  return expand(g, x_shape);
}

// sum and mean share everything but the divisor.
Tensor sum_or_mean(const char* op, const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim,
                   bool is_mean) {
  check_float(op, x);
  const std::vector<int64_t> dims = kernels::normalize_dims(op, dims_in, x.shape());
  double count = 1;  // elements per output
  for (int64_t d : dims) count *= static_cast<double>(x.size(d));
  const double divisor = is_mean ? count : 1.0;
  Tensor out = kernels::sum_raw(x, dims, keepdim, divisor);
  return record(op, out, {x}, [dims, keepdim, divisor, shape = x.shape()](const Tensor& dout, const Needs&) {
    // forward: out[j] = Σ_{i reduced into j} x[i] / divisor, so dx[i] = dout[j] / divisor
    Tensor g = divisor == 1.0 ? dout : mul_scalar(dout, 1.0 / divisor);
    return Grads{spread_back(g, dims, keepdim, shape)};
  });
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_or_mean("sum", x, dims, keepdim, false);
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return sum_or_mean("mean", x, dims, keepdim, true);
}

Tensor sum(const Tensor& x) { return sum_or_mean("sum", x, all_dims(x), false, false); }
Tensor mean(const Tensor& x) { return sum_or_mean("mean", x, all_dims(x), false, true); }

Tensor max(const Tensor& x, int64_t dim, bool keepdim) {
  const int64_t d = kernels::normalize_dims("max", {dim}, x.shape())[0];
  HYDRA_CHECK(x.size(d) > 0, "max: cannot reduce over dim ", dim, " of size 0 (shape ", shape_str(x.shape()), ")");
  kernels::MaxResult r = kernels::max_raw(x, d, keepdim);
  return record("max", r.values, {x}, [indices = r.indices, d, shape = x.shape()](const Tensor& dout, const Needs&) {
    // forward: out[a, i] = x[a, k*, i] with k* the first maximum, so dx[a, k*, i] = dout[a, i], else 0
    return Grads{kernels::max_backward_raw(dout, indices, shape, d)};
  });
}

Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  const int64_t d = kernels::normalize_dims("argmax", {dim}, x.shape())[0];
  HYDRA_CHECK(x.size(d) > 0, "argmax: cannot reduce over dim ", dim, " of size 0 (shape ", shape_str(x.shape()),
              ")");
  return kernels::max_raw(x, d, keepdim).indices;  // an integer: no gradient, nothing recorded
}

}  // namespace hydra
