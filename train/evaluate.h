// Evaluation of a Hydra on a fixed set: every head on its own, and the heads combined.
//
// For each counted target position (targets that are not the ignore id) it accumulates, in double:
//   head_loss[k]    head k's cross-entropy (perplexity = e^loss);
//   ensemble_loss   the cross-entropy of the mean of the heads' logits;
//   poe_loss        the cross-entropy of the product of experts (β = 1 for every head, temperature 1):
//                   p ∝ Π_k softmax(logits_k);
//   disagreement    the fraction of positions where the heads' argmaxes are not all the same.
// Losses are averaged per token over the whole set, not per batch, so the figures do not depend on the
// batch size. With exact_match (SFT data), a row counts as answered when every answer position's argmax
// is the answer's next id: with teacher forcing this is exactly "greedy decoding from the prompt
// reproduces the answer", since each greedy step then sees the same prefix.
// Runs under NoGradGuard; only the listed heads run.
//
// Under mpirun (across_ranks), batch j is scored by rank j mod P; every rank then gathers every batch's
// sums and adds them in batch order, exactly as one process does: the result is bit-identical to one
// process's, on every rank, and the set is scored P times faster.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "hydra/hydra_transformer.h"
#include "train/data.h"

namespace hydra::train {

struct EvalResult {
  std::vector<int64_t> heads;     // the heads evaluated
  int64_t positions = 0;          // counted target positions
  int64_t batches = 0;
  std::vector<double> head_loss;  // per evaluated head
  double ensemble_loss = 0, poe_loss = 0, disagreement = 0;
  // Exact match (SFT only): rows evaluated, and the fraction answered by each head and the ensemble.
  int64_t rows = 0;
  std::vector<double> head_exact_match;
  double ensemble_exact_match = 0;
  bool has_exact_match = false;

  double mean_head_loss() const;  // the mean of head_loss: the trainer's "val loss"
  nlohmann::json to_json() const;
};

struct EvalOptions {
  int64_t batch_size = 8;
  int64_t max_batches = 0;  // 0: the whole set
  bool exact_match = false;
  bool across_ranks = false;  // split the batches over the MPI ranks (train/distributed.h)
};

// Items 0, 1, ... of `data` in batches of batch_size (the last one may be smaller).
EvalResult evaluate(HydraTransformer& model, const Dataset& data, const std::vector<int64_t>& heads,
                    const EvalOptions& options);

}  // namespace hydra::train
