// Fuzzes the training-state container (the decompressed training_state.bin.zst of a checkpoint,
// train/checkpoint.h): a safetensors file whose __metadata__ holds the state's JSON.
#include "tests/fuzz/fuzz_target.h"
#include "train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hydra::fuzz::run_one(data, size, [](std::string_view bytes) {
    hydra::train::parse_training_state(bytes, "training_state.bin.zst");
  });
}
