// Fuzzes a sharded checkpoint's model.safetensors.index.json (io/safetensors_index.h): its weight_map
// and metadata, and the shard names it may point at.
#include "io/safetensors_index.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hydra::fuzz::run_one(data, size, [](std::string_view text) {
    hydra::io::parse_safetensors_index(text, "model.safetensors.index.json");
  });
}
