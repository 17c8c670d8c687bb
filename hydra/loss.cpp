#include "hydra/loss.h"

#include "autograd/ops.h"
#include "nn/cross_entropy.h"
#include "nn/linear_cross_entropy.h"

namespace hydra {

int64_t count_targets(const Tensor& targets, int64_t ignore_index) {
  HYDRA_CHECK(targets.dtype() == DType::Int64 || targets.dtype() == DType::Int32,
              "count_targets: targets must be int32 or int64, got ", dtype_name(targets.dtype()));
  int64_t n = 0;
  for (int64_t t : targets.to_vector<int64_t>()) n += t != ignore_index;
  return n;
}

Tensor cross_entropy_share(const Tensor& logits, const Tensor& targets, double denominator, int64_t ignore_index) {
  HYDRA_CHECK(denominator > 0, "cross_entropy_share: the denominator must be > 0, got ", denominator);
  const int64_t count = count_targets(targets, ignore_index);
  // With no counted target the mean would be NaN (as PyTorch's); such a micro-batch adds nothing.
  if (count == 0) return zeros({}, logits.dtype());
  // cross_entropy is the mean over this micro-batch's `count` targets; times count / denominator it is
  // the sum over them divided by the step's total.
  return mul_scalar(cross_entropy(logits, targets, ignore_index), static_cast<double>(count) / denominator);
}

Tensor lm_head_loss_share(const nn::LMHead& lm_head, const Tensor& hidden, const Tensor& targets, double denominator,
                          int64_t ignore_index) {
  if (lm_head.w_out.lora || lm_head.w_out.weight.dtype() != hidden.dtype())
    return cross_entropy_share(lm_head.forward(hidden), targets, denominator, ignore_index);
  HYDRA_CHECK(denominator > 0, "lm_head_loss_share: the denominator must be > 0, got ", denominator);
  // With no counted target there is nothing to back-propagate (as cross_entropy_share).
  if (count_targets(targets, ignore_index) == 0) return zeros({}, hidden.dtype());
  return nn::linear_cross_entropy(lm_head.norm.forward(hidden), lm_head.w_out.weight, targets, 1.0 / denominator,
                                  ignore_index);
}

HydraLoss hydra_loss(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  HYDRA_CHECK(logits.dim() == 4, "hydra_loss: logits must be (N, B, T, V), got shape ", shape_str(logits.shape()));
  const int64_t n = logits.size(0);
  const bool per_head = targets.dim() == 3;
  const Shape want_shared{logits.size(1), logits.size(2)};
  HYDRA_CHECK(targets.shape() == want_shared || (per_head && targets.size(0) == n &&
                                                 Shape{targets.size(1), targets.size(2)} == want_shared),
              "hydra_loss: targets of shape ", shape_str(targets.shape()), " do not match logits of shape ",
              shape_str(logits.shape()), " (expected (B, T) or (N, B, T))");
  HydraLoss out;
  Tensor total;
  for (int64_t k = 0; k < n; ++k) {
    Tensor ce = cross_entropy(select(logits, 0, k), per_head ? select(targets, 0, k) : targets, ignore_index);
    out.head_losses.push_back(ce.item<double>());
    total = total.defined() ? add(total, ce) : ce;
  }
  out.loss = mul_scalar(total, 1.0 / static_cast<double>(n));
  return out;
}

}  // namespace hydra
