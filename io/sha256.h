// SHA-256 (FIPS 180-4) as lowercase hex, for provenance in sidecar files (which tokenizer and which
// source text produced a token file).
//
// NOTE: a minimal stand-in with the canonical API; the lead keeps the canonical io/sha256 at merge.
#pragma once

#include <string>
#include <string_view>

namespace hydra::io {

std::string sha256_hex(std::string_view bytes);

// The file is read in chunks; an unreadable file is a hydra::Error naming it.
std::string sha256_file_hex(const std::string& path);

}  // namespace hydra::io
