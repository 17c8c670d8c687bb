// GPT-2's byte-level alphabet (the mapping is described in byte_level.h).
#include "io/byte_level.h"

#include <array>

#include "io/utf8.h"

namespace hydra::io {

namespace {

bool stands_for_itself(unsigned b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct Tables {
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, 324> to_byte{};  // indexed by code point; -1 outside the alphabet (max is U+0143)
  Tables() {
    to_byte.fill(-1);
    char32_t next = 256;
    for (unsigned b = 0; b < 256; ++b) {
      to_char[b] = stands_for_itself(b) ? static_cast<char32_t>(b) : next++;
      to_byte[to_char[b]] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

void append_utf8(std::string& out, char32_t cp) {  // cp < 0x800 here
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

char32_t byte_level_char(uint8_t b) { return tables().to_char[b]; }

std::string byte_level_encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) append_utf8(out, tables().to_char[static_cast<uint8_t>(c)]);
  return out;
}

std::optional<std::string> byte_level_decode(std::string_view text) {
  if (utf8_invalid_offset(text) != std::string_view::npos) return std::nullopt;
  std::string out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  for (size_t i = 0; i < text.size();) {
    char32_t cp = 0;
    if (s[i] < 0x80) {
      cp = s[i++];
    } else if (s[i] < 0xE0) {
      cp = (static_cast<char32_t>(s[i] & 0x1F) << 6) | (s[i + 1] & 0x3F);
      i += 2;
    } else {
      return std::nullopt;  // three- and four-byte characters are all above U+0143
    }
    if (cp >= tables().to_byte.size() || tables().to_byte[cp] < 0) return std::nullopt;
    out += static_cast<char>(tables().to_byte[cp]);
  }
  return out;
}

}  // namespace hydra::io
