// HuggingFace OLMo-2 (Olmo2ForCausalLM) checkpoints in and out of Hydra.
//
// An HF directory holds config.json and the weights, either model.safetensors or shards with
// model.safetensors.index.json (io/safetensors_index.h), under HF names (docs/model.md, 'HuggingFace ↔
// OLMo-core names'; the file rules are in docs/formats.md, 'HuggingFace OLMo-2 checkpoints'):
//
//   model.embed_tokens.weight                          <-> embeddings.weight
//   model.layers.{i}.self_attn.{q,k,v,o}_proj.weight   <-> blocks.{i}.attention.w_{q,k,v,out}.weight
//   model.layers.{i}.self_attn.{q,k}_norm.weight       <-> blocks.{i}.attention.{q,k}_norm.weight
//   model.layers.{i}.post_attention_layernorm.weight   <-> blocks.{i}.attention_norm.weight
//   model.layers.{i}.mlp.{gate,up,down}_proj.weight    <-> blocks.{i}.feed_forward.w{1,3,2}.weight
//   model.layers.{i}.post_feedforward_layernorm.weight <-> blocks.{i}.feed_forward_norm.weight
//   model.norm.weight                                  <-> lm_head.norm.weight
//   lm_head.weight                                     <-> lm_head.w_out.weight
//
// The right-hand side is the OLMo-core state that HydraTransformer::load_olmo_state takes. The rename is
// all there is: no transpose, no q/k permutation (both sides use rotate-half RoPE).
//
// config.json: model_type must be "olmo2" (and architectures, when given, must list Olmo2ForCausalLM).
// Required: vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
// rms_norm_eps, rope_theta, max_position_embeddings (transformers always writes these for Olmo2);
// num_key_value_heads missing or null means num_attention_heads, as in transformers. Refused with a
// message: tie_word_embeddings true, attention_bias true, a non-null rope_scaling, hidden_act other than
// silu, a head_dim other than hidden_size / num_attention_heads. Other keys (token ids, dropout, dtype)
// do not change the forward pass and are ignored.
//
// Export writes head K's model as a plain OLMo-2: embeddings, the trunk blocks, head K's blocks
// renumbered after the trunk, the final norm and the output layer; float32; the padded vocabulary
// (Hydra's vocab_size) as HF's vocab_size. Token ids are not known to Hydra and are written as null.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "hydra/hydra_transformer.h"
#include "nn/transformer_config.h"

namespace hydra {

struct HfOlmo2Config {
  nn::TransformerConfig base;  // vocab_size is HF's (the embedding rows in the checkpoint)
  int64_t max_position_embeddings = 0;
};

// Parses and validates an HF config.json (no I/O). `file` names it in errors.
HfOlmo2Config parse_hf_olmo2_config(std::string_view text, const std::string& file);
// The config.json transformers would write for this model.
nlohmann::ordered_json hf_olmo2_config_json(const nn::TransformerConfig& base, int64_t max_position_embeddings);

// The Hydra split of an HF model: n_heads heads of heads_depth blocks, the trunk the rest; vocab_size 0
// keeps HF's, a larger one pads (a smaller one is an error). Validated; nothing is allocated.
HydraTransformerConfig hydra_config_from_hf(const HfOlmo2Config& hf, int64_t n_heads, int64_t heads_depth,
                                            int64_t vocab_size = 0);

// HF name -> OLMo-core name, and back. An unmapped name is an error naming it (and `source`).
std::string hf_to_olmo_name(const std::string& hf_name, const std::string& source);
std::string olmo_to_hf_name(const std::string& olmo_name);

// Renames a whole HF state to OLMo-core names after checking it is exactly the tensors `base` needs
// (every missing or extra name, wrong shape or non-float32 tensor is an error naming the HF tensor).
nn::StateDict olmo_state_from_hf(const std::map<std::string, Tensor>& hf_state, const nn::TransformerConfig& base,
                                 const std::string& source);

// Reads an HF directory and builds the Hydra model (every head a copy of the last heads_depth blocks).
std::unique_ptr<HydraTransformer> load_hf_olmo2(const std::string& hf_dir, int64_t n_heads, int64_t heads_depth,
                                                int64_t vocab_size = 0);

// Head `head`'s model under HF names (views of the model's parameters, no copy).
std::map<std::string, Tensor> hf_state_for_head(const HydraTransformer& model, int64_t head);

// HF's default shard limit (save_pretrained's "5GB").
inline constexpr uint64_t kHfDefaultMaxShardBytes = 5'000'000'000;

// Writes head `head` as an HF OLMo-2 directory at `out_dir`, which must not exist; atomic (a temporary
// sibling directory renamed into place). Returns the weight files written.
std::vector<std::string> export_hf_olmo2(const HydraTransformer& model, int64_t head, const std::string& out_dir,
                                         int64_t max_position_embeddings = 4096,
                                         uint64_t max_shard_bytes = kHfDefaultMaxShardBytes);

}  // namespace hydra
