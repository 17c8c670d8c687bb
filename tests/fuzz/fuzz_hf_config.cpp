// Fuzzes a HuggingFace OLMo-2 config.json (hydra/hf_olmo2.h), then maps what parses to a Hydra config
// the way `hydra convert` does (which validates it).
#include "hydra/hf_olmo2.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hydra::fuzz::run_one(data, size, [](std::string_view text) {
    const hydra::HfOlmo2Config hf = hydra::parse_hf_olmo2_config(text, "config.json");
    hydra::hydra_config_from_hf(hf, 5, 3);
  });
}
