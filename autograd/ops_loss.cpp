// Differentiable cross-entropy: the fused forward kernel (tensor/softmax.h) saves one logsumexp per
// row; the backward recomputes the softmax row by row from the logits and those. Nothing of size
// N x V is kept between forward and backward beyond the logits themselves.
#include "autograd/ops_loss.h"

#include "autograd/record.h"
#include "tensor/softmax.h"

namespace hydra {

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  // shape: logits (..., V), targets (...) -> loss ()
  kernels::CrossEntropyForward f = kernels::cross_entropy_forward_raw(logits, targets, ignore_index);
  return record("cross_entropy", f.loss, {logits},
                [logits = logits.detach(), targets = targets.detach(), lse = f.lse, count = f.count, ignore_index](
                    const Tensor& dloss, const Needs&) {
                  // forward: loss = Σ_counted rows (lse - logit[target]) / count, and ∂lse/∂logit = softmax,
                  // so dlogits = (softmax - onehot(target)) * dloss / count; ignored rows get 0
                  return Grads{kernels::cross_entropy_backward_raw(logits, targets, lse, count, dloss, ignore_index)};
                });
}

}  // namespace hydra
