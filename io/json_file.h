// Reading JSON files (config.json, index and manifest files, tokenizer.json) with errors that name the
// file: one place for it, so every reader reports a missing file or a syntax error the same way.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace hydra::io {

// Parses `text`; a syntax error (or invalid UTF-8, which nlohmann rejects) becomes a hydra::Error
// "<source>: not valid JSON (<parser message>)". No I/O: the fuzz targets call this.
nlohmann::json parse_json_text(std::string_view text, const std::string& source);

// Reads and parses a whole file. `what` says what the file should be, for the message when it cannot
// be read ("cannot read 'm/config.json' (a Hydra model directory's config)").
nlohmann::json read_json_file(const std::string& path, const std::string& what = "");

// The whole file as bytes; a hydra::Error naming the file when it cannot be opened or read.
std::string read_file_bytes(const std::string& path, const std::string& what = "");

}  // namespace hydra::io
