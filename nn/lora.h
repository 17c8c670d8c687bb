// LoRA (low-rank adaptation) of a Linear, with HuggingFace PEFT's conventions:
//
//   y = x Wᵀ + scaling · B(A(dropout(x))),   scaling = alpha / rank
//
// Shapes: x (..., in), W (out, in), A = lora_A.weight (rank, in), B = lora_B.weight (out, rank)
// -> y (..., out). The adapter is two Linears registered as children of the adapted Linear, so its
// parameters are named "<linear>.lora_A.weight" and "<linear>.lora_B.weight".
//
//   - Init (PEFT's default): A kaiming-uniform with a = √5 (torch.nn.init.kaiming_uniform_, fan_in = in),
//     i.e. uniform(−1/√in, 1/√in); B zeros, so a fresh adapter leaves the output unchanged.
//   - Dropout (inverted, probability `dropout`) acts on the adapter's input only, never on the base
//     product, and only while training: set_lora_training(root, &gen) switches it on with `gen` as the
//     random stream (a counter-based Generator: the masks are the same at any thread count, and the
//     stream is two integers a checkpoint saves); set_lora_training(root, nullptr) switches it off.
//     The masks are drawn in forward order, one draw of x.numel() per adapted call.
//   - Merging folds W += scaling · B A (computed in float64, rounded once) and removes the adapter.
//
// Not here: which linears of a model get adapters, the adapter files, the trainable flags of the base
// weights (hydra/lora.h does all of that for a HydraTransformer).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "nn/linear.h"
#include "nn/module.h"
#include "tensor/random.h"

namespace hydra::nn {

struct LoraConfig {
  int64_t rank = 8;
  double alpha = 0; /* 0 means 2*rank */
  double dropout = 0.0;
  // Which linears get adapters (hydra/lora.h: a name without a dot is a linear's own name inside the
  // trained heads; a dotted pattern is a glob over full module paths). Default: the feed-forward.
  std::vector<std::string> targets = {"w1", "w2", "w3"};

  // alpha, or 2 * rank when alpha is 0.
  double effective_alpha() const { return alpha == 0 ? 2.0 * static_cast<double>(rank) : alpha; }
  // effective_alpha() / rank.
  double scaling() const { return effective_alpha() / static_cast<double>(rank); }
  // rank >= 1, alpha finite and >= 0, dropout in [0, 1), at least one target and none empty. Throws
  // hydra::Error naming the field and the value.
  void validate() const;
};

// The adapter a Linear carries (Linear::lora).
class LoraAdapter {
 public:
  // lora_A: in_features -> rank, lora_B: rank -> out_features, both meta until materialized.
  LoraAdapter(int64_t in_features, int64_t out_features, int64_t rank, double alpha, double dropout);

  int64_t rank;
  double alpha, scaling, dropout;
  Linear lora_A, lora_B;
  // Where the dropout masks come from while training; nullptr (evaluation) means no dropout. Not
  // owned: set_lora_training points every adapter at the trainer's generator.
  Generator* dropout_gen = nullptr;
  // True when a forward draws a dropout mask: training mode (a generator) and dropout > 0.
  bool draws_masks() const { return dropout_gen != nullptr && dropout > 0; }
};

// x (..., in), weight (out, in), lora_A (rank, in), lora_B (out, rank) -> (..., out):
// linear(x, weight) + scaling * linear(linear(dropout(x), lora_A), lora_B), with dropout applied only
// when dropout_gen is given and dropout > 0. Errors name "lora_linear" and every shape.
Tensor lora_linear(const Tensor& x, const Tensor& weight, const Tensor& lora_A, const Tensor& lora_B, double scaling,
                   double dropout = 0.0, Generator* dropout_gen = nullptr);
// The same map without dropout, from linear_reference, mul_scalar and add only: tests only.
Tensor lora_linear_reference(const Tensor& x, const Tensor& weight, const Tensor& lora_A, const Tensor& lora_B,
                             double scaling);

// Gives `linear` an adapter of (rank, alpha, dropout) with meta parameters (materialize them, then
// init_lora_). Error if it already has one or the values are invalid (as LoraConfig::validate).
void add_lora(Linear& linear, int64_t rank, double alpha, double dropout);
// A = kaiming_uniform(a = √5) drawn from gen (which advances by A's numel), B = 0. In place.
void init_lora_(Linear& linear, Generator& gen);
// W += scaling · B A, then the adapter is removed (its parameters disappear from the module tree).
void merge_lora(Linear& linear);

// Every Linear under `root` that can carry an adapter (not the adapters' own lora_A/lora_B), with its
// dotted module path, in module order.
std::vector<std::pair<std::string, Linear*>> named_linears(Module& root);
// Training mode for every adapter under `root`: dropout draws from *dropout_gen; nullptr turns dropout
// off (evaluation, and training with dropout 0 never draws). Returns how many adapters it set.
int64_t set_lora_training(Module& root, Generator* dropout_gen);
// True when a forward through `root` draws dropout masks (an adapter in training mode with dropout > 0):
// such a forward consumes a shared generator, so the order of the draws, and the bits, depend on the
// order the modules run in.
bool draws_dropout_masks(Module& root);

}  // namespace hydra::nn
