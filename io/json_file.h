// Reading JSON files (config.json, shard indexes, manifests, safetensors headers, tokenizer.json) that may
// be hostile, with errors that name the file: one place for it, so every reader rejects the same things
// the same way (docs/formats.md, 'JSON, everywhere').
//
// Strict: the whole text must be one JSON value (whitespace around it allowed), valid UTF-8, with no raw
// NUL byte (nlohmann's lexer would stop there and let "{...}\0<anything>" through), no object naming a
// key twice (nlohmann would silently keep one of the two, so a file could mean different things to Hydra
// and to another reader), and no nesting deeper than kMaxJsonDepth (real files nest a handful of levels;
// a deeper value would make every recursive walk of it, such as a dump, a stack overflow waiting to
// happen).
//
// Cost: the parse is one pass (the duplicate check is a lookup in the object being built), so time is
// linear in the text (times log of the largest object's key count) and memory a small multiple of it.
// Values quoted in messages go through json_excerpt, which never renders more than a few dozen
// characters whatever the value holds.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace hydra::io {

inline constexpr int kMaxJsonDepth = 64;

// Parses `text`. Errors: "<source>: not valid JSON (<why>)", "<source>: names '<key>' twice",
// "<source>: JSON nested deeper than 64 levels". No I/O: the fuzz targets call this.
nlohmann::json parse_json_text(std::string_view text, const std::string& source);

// Reads (io/input_file.h: a regular file of at most max_bytes) and parses a whole file. `kind` says what
// the file should be, for the messages ("Hydra model config").
nlohmann::json read_json_file(const std::string& path, const std::string& kind, uint64_t max_bytes);

// A value for an error message: JSON text cut to about max_chars ("..." marks the cut). Bounded work:
// long strings are cut before they are escaped, containers are walked only until the text is long enough.
std::string json_excerpt(const nlohmann::json& value, size_t max_chars = 60);

}  // namespace hydra::io
