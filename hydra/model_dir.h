// A model directory: config.json (the HydraTransformerConfig with its format version) and
// model.safetensors (every parameter, float32, by its contract name). A model with LoRA adapters also
// has adapters.safetensors and adapter_config.json (hydra/lora.h); model.safetensors then holds the
// base weights only, and loading applies the adapters.
//
// Writing is atomic at the directory level (io/atomic_dir.h): everything goes into a temporary sibling
// directory that is fsynced and renamed into place, so a crash leaves either no directory or a complete
// one. A training checkpoint (train/checkpoint.h) is a model directory plus the training state.
#pragma once

#include <memory>
#include <string>

#include "hydra/hydra_transformer.h"

namespace hydra {

// Writes `model` to `dir`, which must not exist yet (refusing to overwrite keeps old work safe).
void save_model_dir(const std::string& dir, const HydraTransformer& model);
// Writes config.json and model.safetensors (and the adapter files, if any) into the existing directory
// `dir` (each file atomically); save_model_dir and the checkpoint writer call it on their temp directory.
void write_model_files(const std::string& dir, const HydraTransformer& model);
// Reads config.json only (no weights): enough for `hydra info` and meta builds.
HydraTransformerConfig load_model_config(const std::string& dir);
// Reads the config and the weights, then the adapters when adapter_config.json is present; every error
// names the file and what is wrong.
std::unique_ptr<HydraTransformer> load_model_dir(const std::string& dir);

}  // namespace hydra
