// GPT-2's byte-level alphabet: how byte-level BPE vocabularies (GPT-2, cl100k, OLMo-2's dolma2) spell
// raw bytes as printable Unicode characters in tokenizer.json.
//
// The 188 bytes that are printable Latin-1 ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) stand for
// themselves; the other 68 (controls, space, DEL, U+00A0, U+00AD) get U+0100, U+0101, ... in byte
// order, so the space byte is 'Ġ' (U+0120) and '\n' is 'Ċ' (U+010A). The tokenizer converts every
// vocab entry back to raw bytes once, at load time, and then works on raw bytes only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hydra::io {

// The code point that stands for byte `b`.
char32_t byte_level_char(uint8_t b);

// Raw bytes -> their byte-level spelling (UTF-8).
std::string byte_level_encode(std::string_view bytes);

// A byte-level spelling (UTF-8) -> the raw bytes; nullopt if `text` is not valid UTF-8 or holds a
// character outside the alphabet.
std::optional<std::string> byte_level_decode(std::string_view text);

}  // namespace hydra::io
