// HydraTransformer: a shared trunk, N heads, one shared lm_head (docs/model.md, 'The Hydra contract').
//
//   input_ids (B, T)
//     -> trunk: embeddings + trunk blocks           -> hidden (B, T, C)      runs once per call
//     -> [+ residual]                                                        added once, out of place
//     -> head k: its own blocks                      -> (B, T, C)            for each selected head
//     -> [last position only]                        -> (B, T_out, C)
//     -> lm_head: final RMSNorm + w_out              -> (B, T_out, V)
//   stacked over the selected heads                  -> (n_selected, B, T_out, V)
//
// Parameter names: trunk.embeddings.weight, trunk.blocks.{i}.…, heads.{k}.blocks.{j}.… (j from 0 in
// every head), lm_head.norm.weight, lm_head.w_out.weight.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "hydra/config.h"
#include "nn/embedding.h"
#include "nn/lm_head.h"
#include "nn/module.h"
#include "nn/transformer_block.h"

namespace hydra {

// Embeddings then the first trunk_layers blocks. No final norm.
class Trunk : public nn::Module {
 public:
  explicit Trunk(const HydraTransformerConfig& config);
  Tensor forward(const Tensor& input_ids);  // (B, T) int -> (B, T, C)

  nn::Embedding embeddings;
  std::vector<std::unique_ptr<nn::TransformerBlock>> blocks;
};

// head_layers blocks. No embeddings, no norm, no lm_head.
class Head : public nn::Module {
 public:
  explicit Head(const HydraTransformerConfig& config);
  Tensor forward(const Tensor& hidden);  // (B, T, C) -> (B, T, C)

  std::vector<std::unique_ptr<nn::TransformerBlock>> blocks;
};

using HeadIndices = std::optional<std::vector<int64_t>>;

class HydraTransformer : public nn::Module {
 public:
  // See HydraTransformerConfig::build.
  explicit HydraTransformer(const HydraTransformerConfig& config, const std::string& init_device = "cpu",
                            uint64_t seed = 0);

  const HydraTransformerConfig& config() const { return config_; }
  // True while the parameters have no memory (built on "meta" and not yet given tensors).
  bool is_meta() const;

  // (B, T) ids -> (B, T, C) trunk output (pre-norm).
  Tensor forward_trunk(const Tensor& input_ids);
  // hidden (B, T, C) -> logits (n_selected, B, T_out, V). head_indices: none = all heads in order; an
  // empty list or an index outside [0, N) is an error; duplicates run that head twice. residual must
  // have hidden's shape and is added once before the heads.
  Tensor forward_heads(const Tensor& hidden_states, const HeadIndices& head_indices = std::nullopt,
                       const std::optional<Tensor>& residual = std::nullopt, bool last_token_only = false);
  // forward_heads(forward_trunk(input_ids), head_indices, residual, last_token_only) — note the order.
  Tensor forward(const Tensor& input_ids, const std::optional<Tensor>& residual = std::nullopt,
                 const HeadIndices& head_indices = std::nullopt, bool last_token_only = false);
  // (logits (n_selected, B, T_out, V), hidden (len(hidden_head_indices), B, T_out, C)): hidden is each
  // listed head's last block output (the lm_head input). Every listed head must be selected; with a
  // duplicated head the first run's hidden state is returned.
  std::pair<Tensor, Tensor> residual_forward(const Tensor& input_ids, const std::vector<int64_t>& hidden_head_indices,
                                             const HeadIndices& head_indices = std::nullopt,
                                             bool last_token_only = false);

  // KV cache of every attention layer (trunk and heads). omit_last leaves the last head out: it gets
  // no cache and always attends over exactly the sequence it is given.
  void init_kv_cache(int64_t batch_size, int64_t max_seq_len, bool omit_last = false);
  void reset_kv_cache(bool omit_last = false);
  void rollback_kv_cache(int64_t n, bool omit_last = false);
  void sync_kv_cache(int64_t target_length, bool omit_last = false);
  // Drops every cache (trunk and heads): forwards attend over their input alone again, and can train.
  void free_kv_cache();

  // Loads a flat OLMo-core-named state (converted HF OLMo-2): blocks.{i} with i < trunk_layers go to
  // the trunk, the others to every head (each its own copy); embeddings.weight and lm_head.w_out.weight
  // with fewer than vocab_size rows get zero rows appended. Strict, like load_state_dict.
  static void load_olmo_state(HydraTransformer& model, const nn::StateDict& olmo_state, int64_t trunk_layers,
                              int64_t vocab_size);
  // Where load_olmo_state puts an OLMo-core tensor: "blocks.3.x" -> "trunk.blocks.3.x" or, past the
  // trunk, "heads.{k}.blocks.{3 - trunk_layers}.x" for every head k; "lm_head.*" as is; others under
  // "trunk.". A malformed block name is an error.
  static std::vector<std::string> olmo_to_hydra_names(const std::string& olmo_name, int64_t trunk_layers,
                                                      int64_t n_heads);

  // How many times the trunk has run (the trunk must run once per call whatever the number of heads).
  int64_t trunk_calls() const { return trunk_calls_; }

  Trunk trunk;
  std::vector<std::unique_ptr<Head>> heads;
  nn::LMHead lm_head;
  // The target patterns the model's LoRA adapters were added with (hydra/lora.h keeps it); empty
  // without adapters.
  std::vector<std::string> lora_targets;

 private:
  std::vector<int64_t> select_heads(const HeadIndices& head_indices, const char* op) const;
  // Runs the selected heads on h and applies the lm_head; also returns each run's pre-norm output.
  std::pair<Tensor, std::vector<Tensor>> run_heads(const Tensor& h, const std::vector<int64_t>& selected,
                                                   bool last_token_only);
  bool heads_draw_dropout_masks(const std::vector<int64_t>& selected);
  std::vector<nn::Attention*> cached_attentions(bool omit_last);
  void initialize(uint64_t seed);

  HydraTransformerConfig config_;
  int64_t trunk_calls_ = 0;
};

}  // namespace hydra
