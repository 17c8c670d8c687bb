// LoRA adapters on a HydraTransformer: choosing the linears, giving the adapters a slab, merging them,
// and the adapter files of a model directory. The math of one adapter is in nn/lora.h.
//
// Targets (nn::LoraConfig::targets) select among the model's linears (w_q, w_k, w_v, w_out, w1, w2, w3
// of every block, and lm_head.w_out):
//   - a pattern without a dot ("w1", "w_q", "w_*") is a shell glob over a linear's own name, looked for
//     inside the trained heads only;
//   - a pattern with dots ("heads.0.blocks.*.attention.w_q") is a shell glob over full module paths.
// It is an error for a pattern to name a linear in the trunk or the shared lm_head (an adapter there
// would change every head), a linear in a head that is not trained, or nothing at all.
//
// Parameters: "<linear path>.lora_A.weight" (rank, in) and "<linear path>.lora_B.weight" (out, rank).
// They live in one float32 slab of their own (64-byte aligned views, in module order); the base
// parameters stay where they are, views into the model's slab. add_lora_adapters makes the new adapters
// require gradients and leaves every base parameter's flag as it was (freezing the base is the
// trainer's call: model.set_trainable("*", false) before, or set_only_lora_trainable). Loaded adapters,
// like every loaded parameter, do not require gradients.
//
// Files (written by write_model_files, read by load_model_dir: hydra/model_dir.h). A model with
// adapters is config.json + model.safetensors (the base weights only, as for any model) plus
//   adapters.safetensors   every adapter tensor by full name, float32, __metadata__ {"format": "hydra-lora"}
//   adapter_config.json    {"format": "hydra-lora", "format_version": 1, "rank": R, "alpha": A,
//                           "dropout": P, "targets": [patterns], "linears": [adapted module paths]}
// where alpha is the resolved value (never 0) and `linears`, in module order, must be exactly what the
// targets select in the heads those linears belong to. Reading is strict: every error names the file and
// the field or tensor (a missing or extra tensor, a shape that does not fit the rank and the linear, a
// linear the model does not have, a field of the wrong type, an unknown field).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hydra/hydra_transformer.h"
#include "nn/lora.h"
#include "tensor/random.h"

namespace hydra {

inline constexpr const char* kAdapterConfigFile = "adapter_config.json";
inline constexpr const char* kAdapterWeightsFile = "adapters.safetensors";
inline constexpr const char* kAdapterFormat = "hydra-lora";
inline constexpr int kAdapterFormatVersion = 1;

// The LoRA configuration of a model that has adapters.
struct LoraInfo {
  nn::LoraConfig config;             // alpha resolved (never 0); targets as they were given
  std::vector<std::string> linears;  // module paths of the adapted linears, in module order
  std::vector<int64_t> heads;        // the heads holding them, ascending
  int64_t num_params = 0;            // adapter parameters (rank · (in + out) per linear)
};

// The module paths the targets select, in module order (each once), under the rules at the top.
// trained_heads: non-empty, each in [0, n_heads), no repeats. Works on meta models.
std::vector<std::string> resolve_lora_targets(HydraTransformer& model, const std::vector<std::string>& targets,
                                              const std::vector<int64_t>& trained_heads);

// Adds an adapter (config's rank, alpha, dropout) to every linear the targets select in the trained
// heads; A drawn from init_gen (kaiming-uniform, a = √5) linear by linear in module order, B zero.
// Returns the new parameter names in named_parameters() order. Error if the model already has adapters
// or config is invalid. On a meta model the adapters are meta too (counted, not allocated or drawn).
std::vector<std::string> add_lora_adapters(HydraTransformer& model, const nn::LoraConfig& config,
                                           const std::vector<int64_t>& trained_heads, Generator& init_gen);
// Folds W += scaling · B A into every adapted linear's weight and removes the adapters (their parameter
// names disappear; the model then saves as a plain model directory). Returns how many it merged.
int64_t merge_lora_adapters(HydraTransformer& model);
bool has_lora_adapters(const HydraTransformer& model);
// The model's LoRA configuration; none without adapters. Error if its adapters disagree on rank, alpha
// or dropout (possible only when built by hand with nn::add_lora).
std::optional<LoraInfo> lora_info(const HydraTransformer& model);
// requires_grad on the adapters' parameters and off on every other one ("only adapters train").
// Returns the number of adapter parameters (tensors) left trainable; error if there are none.
int64_t set_only_lora_trainable(HydraTransformer& model);

// True for an adapter parameter name ("….lora_A.weight" or "….lora_B.weight").
bool is_lora_parameter(const std::string& name);
// The model's parameters without (base_state_dict) and only (lora_state_dict) the adapters' ones.
nn::StateDict base_state_dict(const HydraTransformer& model);
nn::StateDict lora_state_dict(const HydraTransformer& model);

// adapter_config.json's content, and back. parse_adapter_config checks every field's type and range
// (not against a model: check_adapter_config does that); `file` names it in errors. No I/O.
nlohmann::json adapter_config_json(const LoraInfo& info);
LoraInfo parse_adapter_config(const nlohmann::json& j, const std::string& file);

// Checks a parsed config against `model`: every listed linear exists and lies in a head, and the targets
// select exactly those linears in those heads. Returns the linears in module order. `file` names the
// config in errors. No I/O.
std::vector<std::string> check_adapter_config(HydraTransformer& model, const LoraInfo& info, const std::string& file);

// Writes adapters.safetensors and adapter_config.json into `dir` (each atomically) when the model has
// adapters; nothing otherwise.
void write_lora_files(const std::string& dir, const HydraTransformer& model);
// When `dir` holds adapter_config.json, validates it and adapters.safetensors against `model` (which
// must have no adapters yet) and adds the adapters with the stored weights. Returns whether it did.
// adapters.safetensors without adapter_config.json is an error (the weights would be ignored).
bool load_lora_files(const std::string& dir, HydraTransformer& model);

}  // namespace hydra
