// HydraTransformerConfig: an OLMo-2 base config split into a shared trunk and N heads
// (docs/model.md, 'The Hydra contract'). Config -> validate() -> build().
//
//   trunk: embeddings + blocks 0 .. trunk_layers-1            (runs once per forward)
//   heads: N copies of blocks trunk_layers .. n_layers-1       (each head its own weights)
//   lm_head: final RMSNorm + output projection, shared by all heads
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "nn/transformer_config.h"
#include "tensor/shape.h"

namespace hydra {

class HydraTransformer;

struct HydraTransformerConfig {
  nn::TransformerConfig base_config;
  int64_t n_heads = 1;       // N: hydra heads (not attention heads: those are base_config.n_heads)
  int64_t trunk_layers = 0;
  int64_t head_layers = 1;

  // What a config may ask for. A config.json is outside input: without limits it could ask for 10^9
  // layers (a module tree that never finishes building, even on the meta device) or sizes whose products
  // overflow int64. Every limit is far above any real model (Llama 3 405B: 126 layers, d 16384).
  static constexpr int64_t kMaxSize = int64_t{1} << 31;  // every base_config size (vocab, d_model, ...)
  static constexpr int64_t kMaxLayers = 4096;            // base_config.n_layers
  static constexpr int64_t kMaxHeads = 1024;             // n_heads (hydra heads)
  static constexpr int64_t kMaxBlocks = 16384;           // trunk_layers + n_heads x head_layers
  static constexpr int64_t kMaxParams = int64_t{1} << 48;

  // trunk_layers + head_layers == base_config.n_layers, n_heads >= 1, trunk_layers >= 0,
  // head_layers >= 1, the limits above (the parameter count computed with overflow checks), and the
  // base config's own rules. Throws hydra::Error naming the field.
  void validate() const;

  // Builds the model (hydra/hydra_transformer.h). init_device:
  //   "cpu"    parameters in one slab, initialised as OLMo-core does (trunc normal std 0.02 at ±3 std,
  //            norms 1) from `seed`, every head its own draw;
  //   "empty"  parameters in one slab, not initialised (their values are unspecified): for a loader that
  //            writes every parameter next (load_state_dict, a converter). The slab's pages cost no
  //            memory until written, so building this way and loading costs one copy of the weights;
  //   "meta"   the whole module tree with shapes only and no parameter memory: for counting, and for a
  //            loader that hands the model its tensors (Module::assign_state_dict, as model directories
  //            are loaded: their weight file memory-mapped and used in place).
  // "cpu" and "empty" first check the slab fits in this machine's memory (tensor/machine_memory.h) and
  // refuse, saying how much it needs, before allocating anything.
  std::unique_ptr<HydraTransformer> build(const std::string& init_device = "cpu", uint64_t seed = 0) const;

  // Every parameter's name and shape in named_parameters() order, from the config alone: what a weight
  // file must hold, checked before anything is built.
  std::vector<std::pair<std::string, Shape>> parameter_shapes() const;
  // The bytes of build("cpu")'s slab (float32, each parameter 64-byte aligned).
  int64_t slab_bytes() const;

  // Parameter counts, computed from the shapes alone (no model needed), with overflow checks.
  int64_t block_params() const;      // one transformer block
  int64_t embedding_params() const;  // V * d
  int64_t trunk_params() const;      // embeddings + trunk blocks
  int64_t head_params() const;       // one head: head_layers blocks
  int64_t lm_head_params() const;    // final norm d + output V * d
  int64_t num_params() const;        // trunk + N heads + lm_head
  // Every parameter but the input embeddings (OLMo-core's definition: lm_head.w_out counts).
  int64_t num_non_embedding_params() const;

  // OLMo-2 1B / 7B (docs/model.md, 'Configurations'): trunk = n_layers - heads_depth.
  static HydraTransformerConfig from_olmo2_1B(int64_t n_heads = 5, int64_t heads_depth = 3,
                                              int64_t vocab_size = 100352);
  static HydraTransformerConfig from_olmo2_7B(int64_t n_heads = 5, int64_t heads_depth = 3,
                                              int64_t vocab_size = 100352);
  // Named presets: "tiny", "small", "gpt2", "olmo2-1b", "olmo2-7b". Unknown names list the known ones.
  static HydraTransformerConfig preset(const std::string& name);
  static std::vector<std::string> preset_names();

  // config.json: {"format_version": 1, "n_heads", "trunk_layers", "head_layers", "base_config": {...}}.
  nlohmann::json to_json() const;
  // `source` names the file in error messages ("model/config.json: field 'n_heads' ...").
  static HydraTransformerConfig from_json(const nlohmann::json& j, const std::string& source);
};

constexpr int kConfigFormatVersion = 1;
// A config.json is a few hundred bytes; a file larger than this is not one (and is not read).
inline constexpr uint64_t kMaxConfigBytes = 1 << 20;

}  // namespace hydra
