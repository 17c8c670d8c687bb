#include "hydra/model_dir.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "io/atomic_file.h"
#include "io/json_file.h"
#include "io/safetensors.h"

namespace hydra {

namespace fs = std::filesystem;

void save_model_dir(const std::string& dir, const HydraTransformer& model) {
  HYDRA_CHECK(!model.is_meta(), "save_model_dir: a meta model has no weights to save");
  const fs::path target(dir);
  HYDRA_CHECK(!fs::exists(target), "output directory '", dir, "' already exists; choose a new path");
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  HYDRA_CHECK(fs::is_directory(parent), "cannot create '", dir, "': parent directory '", parent.string(),
              "' does not exist");
  const fs::path temp = parent / (".tmp-" + target.filename().string() + "-" + std::to_string(::getpid()));
  fs::remove_all(temp);
  fs::create_directory(temp);
  try {
    io::write_file_atomic((temp / "config.json").string(), model.config().to_json().dump(2) + "\n");
    io::save_safetensors((temp / "model.safetensors").string(), model.state_dict(), {{"format", "hydra"}});
    io::fsync_directory(temp.string());
    fs::rename(temp, target);
    io::fsync_directory(parent.string());
  } catch (...) {
    std::error_code ignored;
    fs::remove_all(temp, ignored);
    throw;
  }
}

HydraTransformerConfig load_model_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  return HydraTransformerConfig::from_json(io::read_json_file(path, "is '" + dir + "' a Hydra model directory?"), path);
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
