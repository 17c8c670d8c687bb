// The shape every Hydra fuzz target shares: feed libFuzzer's bytes to one parser, and accept exactly
// two outcomes — it returns, or it throws hydra::Error (a clear rejection). Anything else is a finding:
// a crash or sanitizer report, an InternalError (a broken invariant), another exception type escaping
// (e.g. a nlohmann::json error that should have become a message naming the file), a hang (-timeout)
// or an allocation beyond -rss_limit_mb / -malloc_limit_mb.
//
// Build and run: scripts/fuzz.sh (clang, -fsanitize=fuzzer,address,undefined).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tensor/error.h"

namespace hydra::fuzz {

template <typename Parse>
int run_one(const uint8_t* data, size_t size, Parse parse) {
  try {
    parse(std::string_view(reinterpret_cast<const char*>(data), size));
  } catch (const hydra::Error&) {
    // rejected with a message: the expected outcome for most inputs
  }
  return 0;
}

}  // namespace hydra::fuzz
