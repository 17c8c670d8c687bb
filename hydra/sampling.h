// Next-token distributions for decoding one position: combining the heads' logits, temperature,
// top-k / top-p truncation, drawing a token, and the trust signals (entropy, margins, head votes).
//
// Everything works on one position of a batch of one: each head's logits are V float32 values (a row
// of the (n_heads, 1, T, V) tensor forward returns), and distributions are float64 vectors over the
// ids [0, n) that may be generated (n <= V: ids at or above n, a padded vocabulary's unused rows, get
// no probability at all). The functions write into caller-owned vectors so a decoding loop allocates
// nothing per token. Sums run in id order (and in head order over heads), so results depend only on
// the inputs, never on the thread count.
//
// Not here: the model, KV caches and the decoding loop (hydra/generate.h); the differentiable
// combinations used for training and evaluation (hydra/combine.h).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tensor/random.h"

namespace hydra {

enum class Combine {
  Mean,              // softmax(mean_h(logits_h) / T)
  ProductOfExperts,  // P ∝ exp(Σ_h β_h · log_softmax(logits_h / T))
};

// probs[i] for i < n: the heads' combined distribution at temperature T > 0 (one head alone: both
// rules give softmax(logits / T)). beta: one weight per head (ProductOfExperts only; ignored by Mean).
void combine_distribution(Combine how, std::span<const float* const> head_logits, std::span<const double> beta,
                          int64_t n, double temperature, std::vector<double>& probs);

// Keeps the top_k most probable ids (0: all), then the smallest set of the most probable ids whose
// probability reaches top_p (1: all; at least one id is always kept), and renormalises. Ties in
// probability rank the lower id first. `order` is scratch space.
void truncate_top_k_top_p(std::vector<double>& probs, int64_t top_k, double top_p, std::vector<int64_t>& order);

// The id with the largest value; the lowest such id on ties.
int64_t argmax(std::span<const double> values);
int64_t argmax(const float* logits, int64_t n);

// The id whose cumulative-probability interval (in id order) holds u · Σ probs, u in [0, 1). Ids with
// probability 0 are never drawn.
int64_t sample_index(std::span<const double> probs, double u);

// Speculative decoding's residual: out = max(p - q, 0) renormalised. Returns the mass Σ max(p - q, 0)
// before renormalising (when it is 0, out is left all zero).
double residual_distribution(std::span<const double> p, std::span<const double> q, std::vector<double>& out);

// -Σ p log p (nats); zero-probability ids contribute nothing.
double entropy(std::span<const double> probs);

// The largest probability minus the second largest (1 when one id holds everything).
double top_two_margin(std::span<const double> probs);

// How many heads' argmaxes are `token`, minus the largest number of heads agreeing on any other id
// (0 when there is no other id): positive when the emitted token has the most votes.
int64_t vote_margin(std::span<const int64_t> head_argmax, int64_t token);

// A uniform double in [0, 1) from draw `index` of stream `lane` of gen (53 random bits); the
// generator's state is not changed, so the caller numbers its draws.
double uniform01(const Generator& gen, uint64_t index, uint64_t lane);

}  // namespace hydra
