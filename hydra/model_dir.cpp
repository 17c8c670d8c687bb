#include "hydra/model_dir.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/atomic_dir.h"
#include "io/atomic_file.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace hydra {

namespace fs = std::filesystem;

void write_model_files(const std::string& dir, const HydraTransformer& model) {
  HYDRA_CHECK(!model.is_meta(), "save_model_dir: a meta model has no weights to save");
  io::write_file_atomic((fs::path(dir) / "config.json").string(), model.config().to_json().dump(2) + "\n");
  io::save_safetensors((fs::path(dir) / "model.safetensors").string(), model.state_dict(), {{"format", "hydra"}});
}

void save_model_dir(const std::string& dir, const HydraTransformer& model) {
  HYDRA_CHECK(!model.is_meta(), "save_model_dir: a meta model has no weights to save");
  io::DirectoryWriter out(dir, /*replace=*/false);
  write_model_files(out.temp_dir(), model);
  out.commit();
}

HydraTransformerConfig load_model_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  return HydraTransformerConfig::from_json(io::read_json_file(path, "Hydra model config", kMaxConfigBytes), path);
}

std::unique_ptr<HydraTransformer> load_model_dir(const std::string& dir) {
  HydraTransformerConfig config = load_model_config(dir);
  const std::string weights = (fs::path(dir) / "model.safetensors").string();
  auto state = io::load_safetensors(weights);
  auto model = config.build("cpu");
  try {
    model->load_state_dict(state);
  } catch (const Error& e) {
    throw Error(weights + ": " + e.what());
  }
  return model;
}

}  // namespace hydra
