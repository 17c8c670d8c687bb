// Embedding: token ids -> rows of a (V, C) table.
//
// Shapes: ids (B, T) (any shape works) int32/int64, weight (V, C) -> (B, T, C). The forward copies one
// row per token; the backward scatter-adds dy into the rows used (a token seen twice gets both
// gradients), deterministically for any thread count. No padding index, no max-norm, no scaling
// (OLMo-2 has embed_scale None). A bfloat16 table (inference) gives float32 rows, widened exactly, and
// records no gradient.
//
// The token-id range check here is the only one a model's forward makes (HydraTransformer::forward and
// the CLI rely on it): the lookup kernel below it only asserts.
#pragma once

#include <cstdint>

#include "nn/module.h"

namespace hydra::nn {

// ids (...) int32/int64, every id in [0, V); weight (V, C) -> (..., C). An id out of range is an error
// naming the id, its position in ids and V.
Tensor embedding(const Tensor& ids, const Tensor& weight);

class Embedding : public Module {
 public:
  // weight: [num_embeddings, dim], registered as "weight".
  Embedding(int64_t num_embeddings, int64_t dim);

  // ids (B, T) -> (B, T, dim).
  Tensor forward(const Tensor& ids) const;

  int64_t num_embeddings, dim;
  Tensor weight;
};

}  // namespace hydra::nn
