// JSON parsing for files that may be hostile: the whole text must be one JSON value (whitespace around
// it allowed), valid UTF-8, and no object may name a key twice — nlohmann would silently keep one of
// the two, so a checkpoint could mean different things to Hydra and to another reader.
//
// No I/O: the callers (the safetensors header, the shard index, HF config.json) pass the bytes, so a
// fuzzer can call them directly.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace hydra::io {

// Parses `text`. On failure throws hydra::Error "<prefix>: not valid JSON (...)" or
// "<prefix>: names '<key>' twice".
nlohmann::json parse_json_strict(std::string_view text, const std::string& prefix);

}  // namespace hydra::io
