// A model directory: config.json (the HydraTransformerConfig with its format version) and
// model.safetensors (every parameter, float32, by its contract name).
//
// Writing is atomic at the directory level: everything goes into a temporary sibling directory that is
// fsynced and renamed into place, so a crash leaves either no directory or a complete one.
#pragma once

#include <memory>
#include <string>

#include "hydra/hydra_transformer.h"

namespace hydra {

// Writes `model` to `dir`, which must not exist yet (refusing to overwrite keeps old work safe).
void save_model_dir(const std::string& dir, const HydraTransformer& model);
// Reads config.json only (no weights): enough for `hydra info` and meta builds.
HydraTransformerConfig load_model_config(const std::string& dir);
// Reads the config and the weights; every error names the file and what is wrong.
std::unique_ptr<HydraTransformer> load_model_dir(const std::string& dir);

}  // namespace hydra
