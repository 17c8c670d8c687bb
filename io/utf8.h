// UTF-8 validation for text that goes through the tokenizer (the regex engine runs with its own check
// turned off, so nothing invalid may reach it).
//
// Valid means RFC 3629: no overlong forms, no surrogates (U+D800-U+DFFF), nothing above U+10FFFF, no
// truncated sequences. What to do about invalid text is the caller's choice; the tokenizer rejects it
// with the byte offset so a user can find the bad byte.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace hydra::io {

// The offset of the first byte that starts an invalid sequence, or std::string_view::npos if `text` is
// valid UTF-8.
size_t utf8_invalid_offset(std::string_view text);

// `text` with each invalid byte replaced by U+FFFD (EF BF BD), as Python's
// bytes.decode("utf-8", errors="replace") does for text decoded from arbitrary token ids.
std::string utf8_replace_invalid(std::string_view text);

// The length in bytes of the UTF-8 sequence whose lead byte is `lead` (1 for anything that is not a
// multi-byte lead byte). For valid text only.
inline size_t utf8_sequence_length(unsigned char lead) {
  return lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

}  // namespace hydra::io
