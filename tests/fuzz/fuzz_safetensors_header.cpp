// Fuzzes the safetensors header parser (io/safetensors.h) on whole files: the input is the file.
#include "io/safetensors.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hydra::fuzz::run_one(data, size, [](std::string_view bytes) {
    hydra::io::parse_safetensors_header(bytes, bytes.size(), "fuzz.safetensors");
  });
}
