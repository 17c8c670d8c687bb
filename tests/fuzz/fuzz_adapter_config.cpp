// Fuzzes a LoRA adapter_config.json (hydra/lora.h) as load_model_dir reads it: JSON parsing,
// parse_adapter_config, then check_adapter_config against the `tiny` preset's module tree (a meta build,
// made once): the linears it names and the targets it must agree with.
#include "hydra/lora.h"
#include "io/json_file.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto model = hydra::HydraTransformerConfig::preset("tiny").build("meta");
  return hydra::fuzz::run_one(data, size, [](std::string_view bytes) {
    const hydra::LoraInfo info =
        hydra::parse_adapter_config(hydra::io::parse_json_text(bytes, "adapter_config.json"), "adapter_config.json");
    hydra::check_adapter_config(*model, info, "adapter_config.json");
  });
}
