// Fuzzes a training checkpoint's manifest.json (train/checkpoint.h). Each input is parsed twice: as it
// is (most mutations break the manifest's own sha256 and stop there), and, when it is a JSON object, with
// its manifest_sha256 recomputed, so the fuzzer also reaches every check after the digest.
#include "io/json_file.h"
#include "io/sha256.h"
#include "tests/fuzz/fuzz_target.h"
#include "train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  hydra::fuzz::run_one(data, size, [](std::string_view text) {
    hydra::train::parse_checkpoint_manifest(text, "manifest.json");
  });
  return hydra::fuzz::run_one(data, size, [](std::string_view text) {
    nlohmann::json j = hydra::io::parse_json_text(text, "manifest.json");
    if (!j.is_object()) return;
    j.erase("manifest_sha256");
    j["manifest_sha256"] = hydra::io::sha256_hex(j.dump());  // digest of the rest, as the writer computes it
    hydra::train::parse_checkpoint_manifest(j.dump(2), "manifest.json");
  });
}
