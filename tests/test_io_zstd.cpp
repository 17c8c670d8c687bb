// io/zstd: decompression at the edges the streaming loop has to get right — content sizes on and around
// the decoder's output buffer (ZSTD_DStreamOutSize(), 128 KiB), several frames back to back, skippable
// frames anywhere, frames with and without a declared size — each round-tripped byte for byte; and the
// rejections (truncation at every boundary, trailing garbage, the size cap).
#include <doctest/doctest.h>

#include <zstd.h>

#include <cstring>
#include <string>
#include <vector>

#include "io/zstd.h"
#include "support/op_harness.h"
#include "support/zstd_frame.h"

using namespace hydra;
using namespace hydra::io;

namespace {

std::string frame(const std::string& plain, bool with_size = true) { return test::zstd_frame(plain, with_size); }

// A skippable frame (magic 0x184D2A50 + variant) holding `payload`, which decoders ignore.
std::string skippable(const std::string& payload, unsigned variant = 0) {
  std::string s(8, '\0');
  const uint32_t magic = 0x184D2A50u + variant, size = static_cast<uint32_t>(payload.size());
  std::memcpy(s.data(), &magic, 4);
  std::memcpy(s.data() + 4, &size, 4);
  return s + payload;
}

// Deterministic bytes that compress somewhat (so frames hold compressed blocks, not only raw ones).
std::string pattern(size_t n, unsigned seed = 1) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    s[i] = static_cast<char>((x >> 24) % 7 == 0 ? (x >> 16) : 'a' + i % 13);
  }
  return s;
}

constexpr uint64_t kNoCap = uint64_t{1} << 40;

}  // namespace

TEST_CASE("zstd: content sizes on and around the 128 KiB output buffer, with and without a declared size") {
  const size_t buffer = ZSTD_DStreamOutSize();
  REQUIRE(buffer == 131072);  // the boundary the cases below are built around
  for (const size_t n : {size_t{0}, size_t{1}, buffer - 1, buffer, buffer + 1, 2 * buffer - 1, 2 * buffer,
                         2 * buffer + 1, 3 * buffer, 5 * buffer}) {
    for (const bool with_size : {true, false}) {
      for (const bool zeros : {true, false}) {
        const std::string plain = zeros ? std::string(n, '\0') : pattern(n, static_cast<unsigned>(n));
        INFO("size ", n, with_size ? " declared" : " streamed", zeros ? ", zeros" : ", pattern");
        CHECK(zstd_decompress(frame(plain, with_size), "t.zst", kNoCap) == plain);
      }
    }
  }
}

TEST_CASE("zstd: concatenated frames, each ending on the buffer boundary or not, sizes declared or not") {
  const size_t buffer = ZSTD_DStreamOutSize();
  const std::string a(buffer, '\0'), b = pattern(buffer + 7, 2), c = pattern(2 * buffer, 3), d = "tail";
  CHECK(zstd_decompress(frame(a) + frame(a), "t.zst", kNoCap) == a + a);
  CHECK(zstd_decompress(frame(a, false) + frame(b) + frame(c, false) + frame(d), "t.zst", kNoCap) == a + b + c + d);
  CHECK(zstd_decompress(frame(d) + frame(a, false), "t.zst", kNoCap) == d + a);
  CHECK(zstd_decompress(frame("") + frame(a) + frame(""), "t.zst", kNoCap) == a);
}

TEST_CASE("zstd: skippable frames first, between and last are ignored") {
  const size_t buffer = ZSTD_DStreamOutSize();
  const std::string a(buffer, 'x'), b = pattern(1000, 4);
  CHECK(has_zstd_magic(skippable("meta")));
  CHECK(zstd_decompress(skippable("meta") + frame(a), "t.zst", kNoCap) == a);
  CHECK(zstd_decompress(frame(a) + skippable("", 15) + frame(b, false), "t.zst", kNoCap) == a + b);
  CHECK(zstd_decompress(frame(b) + skippable(std::string(300, '\xff'), 3), "t.zst", kNoCap) == b);
  CHECK(zstd_decompress(skippable("only"), "t.zst", kNoCap).empty());
}

TEST_CASE("zstd: truncation at any point, trailing garbage and the size cap are errors naming the file") {
  const size_t buffer = ZSTD_DStreamOutSize();
  for (const bool with_size : {true, false}) {
    const std::string whole = frame(std::string(buffer, '\0'), with_size) + frame(pattern(buffer, 5), with_size);
    // Every cut inside the stream (the first frame's end excepted: that is a complete, shorter stream).
    const size_t first = frame(std::string(buffer, '\0'), with_size).size();
    for (size_t cut = 4; cut < whole.size(); cut += cut < 64 ? 1 : 97) {
      if (cut == first) continue;
      INFO("cut at ", cut, " of ", whole.size(), with_size ? " (sizes declared)" : "");
      test::check_error_case({"truncated", [&] { zstd_decompress(whole.substr(0, cut), "cut.zst", kNoCap); },
                              {"cut.zst"}});
    }
    CHECK(zstd_decompress(whole.substr(0, first), "t.zst", kNoCap) == std::string(buffer, '\0'));
  }
  const std::string good = frame(pattern(5000, 6));
  test::check_error_case({"truncated inside the last block",
                          [&] { zstd_decompress(good.substr(0, good.size() - 6), "t.zst", kNoCap); },
                          {"truncated zstd file t.zst"}});
  test::check_error_case({"garbage after the last frame", [&] { zstd_decompress(good + "junk", "g.zst", kNoCap); },
                          {"g.zst"}});
  test::check_error_case({"not zstd", [&] { zstd_decompress("abcd", "n.zst", kNoCap); },
                          {"invalid zstd file n.zst", "frame magic"}});
  test::check_error_case({"declared size over the cap",
                          [&] { zstd_decompress(frame(std::string(buffer, '\0')), "big.zst", buffer - 1); },
                          {"big.zst decompresses to 131072 bytes, more than the limit of 131071"}});
  test::check_error_case({"streamed size over the cap",
                          [&] { zstd_decompress(frame(std::string(buffer + 1, '\0'), false), "big.zst", buffer); },
                          {"big.zst decompresses to more than the limit of 131072"}});
  // Exactly at the cap is fine, including when the content ends on the buffer boundary.
  CHECK(zstd_decompress(frame(std::string(buffer, '\0'), false), "t.zst", buffer).size() == buffer);
}
