// Differentiable indexing: each forward calls its kernel (tensor/index.h) and records its backward rule
// directly below it. Both backwards are scatter-adds into zeros of x's shape, deterministic for any
// thread count (see tensor/index.h). The index is saved, never differentiated.
#include "autograd/ops_index.h"

#include "autograd/record.h"
#include "tensor/index.h"

namespace hydra {

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  const int64_t d = normalize_dim("index_select", dim, x.dim());
  kernels::check_index_1d("index_select", index, x.shape(), d);
  Tensor out = kernels::index_select_raw(x, d, index);  // shape: x's with dim d of size index.numel()
  return record("index_select", out, {x},
                [x_shape = x.shape(), d, index = index.detach()](const Tensor& dout, const Needs&) {
                  // forward: out[..., i, ...] = x[..., index[i], ...],
                  // so dx[..., index[i], ...] += dout[..., i, ...] (an entry selected twice gets both)
                  Tensor dx = zeros(x_shape, dout.dtype());
                  kernels::index_add_into(dx, d, index, dout);
                  return Grads{dx};
                });
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  const int64_t d = normalize_dim("gather", dim, x.dim());
  Tensor out = kernels::gather_raw(x, d, index);  // shape: index's
  return record("gather", out, {x},
                [x_shape = x.shape(), d, index = index.detach()](const Tensor& dout, const Needs&) {
                  // forward: out[p] = x[p with p[d] = index[p]], so dx[p with p[d] = index[p]] += dout[p]
                  Tensor dx = zeros(x_shape, dout.dtype());
                  kernels::scatter_add_into(dx, d, index, dout);
                  return Grads{dx};
                });
}

}  // namespace hydra
