// Fuzzes token-file detection and validation (io/token_data.h): llm.c shard headers, .npy headers,
// raw arrays, and zstd frames (decompressed under a cap, then parsed as any of the others), as
// open_token_file does it for a file holding these bytes.
#include "io/token_data.h"
#include "io/zstd.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hydra::fuzz::run_one(data, size, [](std::string_view bytes) {
    hydra::io::TokenFileOptions options;
    options.vocab_size = 50304;
    hydra::io::parse_token_layout(bytes, bytes.size(), "fuzz.bin", options);
    // The zstd path: a cap far below the fuzzer's malloc limit; a frame claiming more is rejected
    // before anything is allocated.
    if (bytes.size() >= 4 && static_cast<unsigned char>(bytes[0]) == 0x28 && static_cast<unsigned char>(bytes[1]) == 0xB5 &&
        static_cast<unsigned char>(bytes[2]) == 0x2F && static_cast<unsigned char>(bytes[3]) == 0xFD) {
      const std::string inner = hydra::io::zstd_decompress(bytes, "fuzz.bin.zst", 64u << 20);
      hydra::io::parse_token_layout(inner, inner.size(), "fuzz.bin.zst", options);
    }
  });
}
