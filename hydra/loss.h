// The training loss of a Hydra: the mean over the trained heads of each head's mean token
// cross-entropy, with PyTorch's ignore_index semantics.
//
//   loss = (1/N) Σ_k  [ Σ_{t counted} CE(logits_k[t], target_k[t]) / count_k ]
//
// A position whose target is the ignore id counts in neither the numerator nor the denominator of its
// head's mean. Every head's loss is reported on its own as well.
//
// Gradient accumulation needs the same loss split over K micro-batches and still token-weighted:
// head k's loss over the step is Σ_m Σ_t CE / Σ_m count_{k,m}, NOT the mean of K per-micro-batch
// means (those differ whenever micro-batches count different numbers of tokens, as masked SFT data
// does). cross_entropy_share() is the micro-batch's term of that sum: its CE sum over the step's total
// count, so that backward on each micro-batch's share adds up to the gradient of the whole step.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/cross_entropy.h"
#include "nn/lm_head.h"
#include "tensor/tensor.h"

namespace hydra {

struct HydraLoss {
  Tensor loss;                      // 0-d, differentiable: the mean over heads of each head's mean
  std::vector<double> head_losses;  // each head's mean cross-entropy (NaN for a head with no counted target)
};

// logits (N, B, T, V); targets (B, T) shared by every head, or (N, B, T) one row of targets per head.
// Errors name "hydra_loss" and both shapes.
HydraLoss hydra_loss(const Tensor& logits, const Tensor& targets, int64_t ignore_index = kIgnoreIndex);

// How many targets are not ignore_index (any shape, int32/int64).
int64_t count_targets(const Tensor& targets, int64_t ignore_index = kIgnoreIndex);

// Σ_{t counted} CE(logits[t], targets[t]) / denominator, differentiable: one micro-batch's share of a
// token-weighted loss whose total count (over every micro-batch of the step) is `denominator`.
// logits (..., V), targets (...). A micro-batch with no counted target gives a plain 0 (no graph: there
// is nothing to back-propagate).
Tensor cross_entropy_share(const Tensor& logits, const Tensor& targets, double denominator,
                           int64_t ignore_index = kIgnoreIndex);

// The same share from a head's output before the lm_head: cross_entropy_share(lm_head.forward(hidden),
// ...), with the vocabulary projection fused with the loss (nn/linear_cross_entropy.h) so that the
// (B, T, V) logits and their gradient never exist whole, and the gradient formed during the forward:
// call it where a backward follows (the trainer). A projection with a LoRA adapter takes the unfused
// path. hidden (B, T, C), targets (B, T).
Tensor lm_head_loss_share(const nn::LMHead& lm_head, const Tensor& hidden, const Tensor& targets, double denominator,
                          int64_t ignore_index = kIgnoreIndex);

}  // namespace hydra
