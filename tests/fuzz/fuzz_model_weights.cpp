// Fuzzes what load_model_dir checks before it builds anything (hydra/model_dir.h): a model's config.json
// (hydra/config.h, with its size limits) and its weight file's header against that config (names,
// shapes, float dtypes). The input is the config's text, a NUL byte (which JSON cannot contain), then
// the whole weight file.
#include <cstring>

#include "hydra/model_dir.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hydra::fuzz::run_one(data, size, [](std::string_view bytes) {
    const size_t nul = bytes.find('\0');
    if (nul == std::string_view::npos) return;
    const auto config =
        hydra::HydraTransformerConfig::from_json(hydra::io::parse_json_text(bytes.substr(0, nul), "config.json"),
                                                 "config.json");
    const std::string_view weights = bytes.substr(nul + 1);
    const auto header = hydra::io::parse_safetensors_header(weights, weights.size(), "model.safetensors");
    hydra::check_weights_match_config(header, config, "model.safetensors");
  });
}
