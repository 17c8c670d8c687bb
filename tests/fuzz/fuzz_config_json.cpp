// Fuzzes a model directory's config.json: JSON parsing, HydraTransformerConfig::from_json and
// validate() (hydra/config.h), as load_model_config does it.
#include "hydra/config.h"
#include "io/json_file.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hydra::fuzz::run_one(data, size, [](std::string_view bytes) {
    hydra::HydraTransformerConfig::from_json(hydra::io::parse_json_text(bytes, "config.json"), "config.json");
  });
}
