#include "hydra/combine.h"

#include "autograd/ops.h"

namespace hydra {

Tensor mean_logits(const Tensor& logits) {
  HYDRA_CHECK(logits.dim() == 4, "mean_logits: expected logits (heads, batch, seq, vocab), got shape ",
              shape_str(logits.shape()));
  return mean(logits, {0});
}

Tensor product_of_experts(const Tensor& logits, const std::vector<double>& beta, double temperature) {
  HYDRA_CHECK(logits.dim() == 4, "product_of_experts: expected logits (heads, batch, seq, vocab), got shape ",
              shape_str(logits.shape()));
  HYDRA_CHECK(static_cast<int64_t>(beta.size()) == logits.size(0), "product_of_experts: ", beta.size(),
              " weights for ", logits.size(0), " heads (logits shape ", shape_str(logits.shape()), ")");
  HYDRA_CHECK(temperature > 0, "product_of_experts: temperature must be > 0, got ", temperature);
  Tensor total;
  for (int64_t k = 0; k < logits.size(0); ++k) {
    // beta_k · log_softmax(logits_k / T)                      shape: (B, T, V)
    Tensor term = mul_scalar(log_softmax(mul_scalar(select(logits, 0, k), 1.0 / temperature), -1), beta[k]);
    total = total.defined() ? add(total, term) : term;
  }
  return log_softmax(total, -1);  // renormalise
}

}  // namespace hydra
