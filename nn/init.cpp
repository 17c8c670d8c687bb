#include "nn/init.h"

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

}  // namespace hydra::nn
