// Reading JSON files (config.json, shard indexes, manifests, safetensors headers) that may be hostile, with
// errors that name the file: one place for it, so every reader rejects the same things the same way
// (docs/formats.md, 'JSON, everywhere').
//
// Strict: the whole text must be one JSON value (whitespace around it allowed), valid UTF-8, with no raw
// NUL byte (nlohmann's lexer would stop there and let "{...}\0<anything>" through) and no object naming
// a key twice (nlohmann would silently keep one of the two, so a file could mean different things to
// Hydra and to another reader).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace hydra::io {

// Parses `text`. Errors: "<source>: not valid JSON (<why>)" or "<source>: names '<key>' twice".
// No I/O: the fuzz targets call this.
nlohmann::json parse_json_text(std::string_view text, const std::string& source);

// Reads and parses a whole file. `what` says what the file should be, for the message when it cannot
// be read ("cannot read 'm/config.json' (a Hydra model directory's config)").
nlohmann::json read_json_file(const std::string& path, const std::string& what = "");

// The whole file as bytes; a hydra::Error naming the file when it cannot be opened or read.
std::string read_file_bytes(const std::string& path, const std::string& what = "");

}  // namespace hydra::io
