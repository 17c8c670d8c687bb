// Fuzzes tokenizer.json loading (io/tokenizer.h: vocab, merges, pre-tokenizer regexes, added tokens),
// then drives whatever loads through encode and decode, where a bad table would show.
#include <vector>

#include "io/tokenizer.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hydra::fuzz::run_one(data, size, [](std::string_view text) {
    const hydra::io::Tokenizer tok = hydra::io::Tokenizer::from_json(text, "tokenizer.json");
    for (bool allow_special : {false, true}) {
      const std::vector<uint32_t> ids = tok.encode("Hello  world's 123\r\n\xc3\xa9<|endoftext|>", allow_special);
      tok.decode(ids);
    }
  });
}
