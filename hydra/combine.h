// Combining the heads' logits into one prediction.
//
// Both take logits (N, B, T, V) as forward returns them and give (B, T, V); both are differentiable.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace hydra {

// The mean of the heads' raw logits (the upstream demo's ensemble).
Tensor mean_logits(const Tensor& logits);

// Product of experts: log_softmax( Σ_k beta[k] · log_softmax(logits[k] / temperature) ), i.e. the
// normalised log-probabilities of p(x) ∝ Π_k softmax(logits_k / T)(x)^beta_k. beta has one weight per
// head (N entries); temperature > 0.
Tensor product_of_experts(const Tensor& logits, const std::vector<double>& beta, double temperature = 1.0);

}  // namespace hydra
