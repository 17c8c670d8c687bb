#include "nn/init.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "tensor/copy.h"

namespace hydra::nn {

namespace {

void check_writable(const char* op, const Tensor& t) {
  HYDRA_CHECK(t.defined(), op, ": the tensor is undefined");
  HYDRA_CHECK(!t.is_meta(), op, ": the tensor of shape ", shape_str(t.shape()),
              " is a meta tensor (no memory); call materialize_parameters first");
  HYDRA_CHECK(is_floating(t.dtype()), op, ": expected a float tensor, got ", dtype_name(t.dtype()), " of shape ",
              shape_str(t.shape()));
}

}  // namespace

void init_normal_(Tensor& t, Generator& gen, double std) {
  check_writable("init_normal_", t);
  HYDRA_CHECK(std > 0, "init_normal_: std = ", std, " must be > 0");
  NoGradGuard no_grad;
  kernels::copy_into(t, gen.trunc_normal(t.shape(), 0.0, std, -3.0 * std, 3.0 * std, t.dtype()));
}

void init_ones_(Tensor& t) {
  check_writable("init_ones_", t);
  NoGradGuard no_grad;
  kernels::copy_into(t, ones(t.shape(), t.dtype()));
}

void init_zeros_(Tensor& t) {
  check_writable("init_zeros_", t);
  NoGradGuard no_grad;
  kernels::copy_into(t, zeros(t.shape(), t.dtype()));
}

void init_kaiming_uniform_(Tensor& t, Generator& gen, double a) {
  check_writable("init_kaiming_uniform_", t);
  HYDRA_CHECK(t.dim() == 2 && t.size(1) >= 1, "init_kaiming_uniform_: expected a (out, in) matrix, got shape ",
              shape_str(t.shape()));
  // NOTE: PyTorch's own sequence of double operations (gain, then std, then √3 · std), so the bound is
  // the same double torch computes, not 1/√in rounded differently.
  const double gain = std::sqrt(2.0 / (1.0 + a * a));
  const double std = gain / std::sqrt(static_cast<double>(t.size(1)));
  const double bound = std::sqrt(3.0) * std;
  NoGradGuard no_grad;
  kernels::copy_into(t, gen.uniform(t.shape(), -bound, bound, t.dtype()));
}

}  // namespace hydra::nn
