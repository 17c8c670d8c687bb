// Embedding: token ids -> rows of a (V, C) table.
//
// Shapes: ids (B, T) (any shape works) int32/int64, weight (V, C) -> (B, T, C). The lookup is the
// index_select primitive, whose backward scatter-adds dy into the rows used (a token seen twice gets
// both gradients), deterministically for any thread count. No padding index, no max-norm, no scaling
// (OLMo-2 has embed_scale None).
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
