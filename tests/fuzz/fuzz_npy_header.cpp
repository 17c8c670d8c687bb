// Fuzzes the NumPy .npy header parser (io/npy.h) on whole files: the input is the file.
#include "io/npy.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hydra::fuzz::run_one(data, size, [](std::string_view bytes) {
    hydra::io::parse_npy_header(bytes, bytes.size(), "fuzz.npy");
  });
}
