// Differentiable softmax and log-softmax: each forward calls its row kernel (tensor/softmax.h) and
// records a fused row backward directly below it. Both save only their output y.
#include "autograd/ops_softmax.h"

#include "autograd/record.h"
#include "tensor/reduce.h"
#include "tensor/softmax.h"

namespace hydra {

namespace {

// The dim along which op normalizes, checked (with the shape in the message) and made non-negative.
int64_t checked_dim(const char* op, const Tensor& x, int64_t dim) {
  HYDRA_CHECK(is_floating(x.dtype()), op, ": expected a float32 or float64 tensor, got ", dtype_name(x.dtype()),
              " of shape ", shape_str(x.shape()));
  return kernels::normalize_dims(op, {dim}, x.shape())[0];
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
  const int64_t d = checked_dim("softmax", x, dim);
  Tensor y = kernels::softmax_raw(x, d, /*log=*/false);
  return record("softmax", y, {x}, [y = y.detach(), d](const Tensor& dy, const Needs&) {
    // forward: y = e^x / Σ e^x along d, so dx = y * (dy - Σ dy * y)
    return Grads{kernels::softmax_backward_raw(dy, y, d, /*log=*/false)};
  });
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  const int64_t d = checked_dim("log_softmax", x, dim);
  Tensor y = kernels::softmax_raw(x, d, /*log=*/true);
  return record("log_softmax", y, {x}, [y = y.detach(), d](const Tensor& dy, const Needs&) {
    // forward: y = x - log Σ e^x along d, so dx = dy - e^y * Σ dy
    return Grads{kernels::softmax_backward_raw(dy, y, d, /*log=*/true)};
  });
}

}  // namespace hydra
