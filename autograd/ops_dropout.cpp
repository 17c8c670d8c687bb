#include "autograd/ops_dropout.h"

#include "autograd/record.h"
#include "tensor/dropout.h"

namespace hydra {

Tensor dropout(const Tensor& x, double p, Generator& gen) {
  HYDRA_CHECK(p >= 0.0 && p < 1.0, "dropout: p must be in [0, 1), got ", p);
  if (p == 0.0) return x;
  const Generator mask_gen = gen;  // the state this call draws at, kept for the backward
  Tensor out = kernels::dropout(x, p, mask_gen);
  gen.set_state(gen.seed(), gen.offset() + static_cast<uint64_t>(x.numel()));
  return record("dropout", out, {x}, [p, mask_gen](const Tensor& dout, const Needs&) {
    // forward: out = x * mask / (1 - p), so dx = dout * mask / (1 - p): the same map applied to dout,
    // with the mask re-drawn from the saved generator state
    return Grads{kernels::dropout(dout, p, mask_gen)};
  });
}

}  // namespace hydra
