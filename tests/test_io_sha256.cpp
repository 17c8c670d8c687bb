// io/sha256: the NIST FIPS 180-4 example vectors, streaming in every split gives the same digest, block
// boundary lengths (55, 56, 63, 64, 65 bytes: where the padding spills into a second block), and files.
// Every digest test runs twice when the CPU has the SHA extensions: with them and with the portable code.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "io/sha256.h"
#include "tensor/error.h"

using namespace hydra;
using namespace hydra::io;
namespace fs = std::filesystem;

namespace {

// 0, 1, ..., 255 repeated: every byte value appears.
std::string all_bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i & 255);
  return s;
}

// Runs `body` with the portable block function, then with the SHA extensions when the CPU has them.
void for_each_implementation(const std::function<void()>& body) {
  for (bool hardware : {false, true}) {
    if (hardware && !sha256_hardware_available()) continue;
    INFO((hardware ? "SHA extensions" : "portable"));
    sha256_use_hardware(hardware);
    body();
  }
  sha256_use_hardware(true);  // back to the default (on when available)
}

}  // namespace

TEST_CASE("sha256_hex gives the NIST example digests") {
  for_each_implementation([] {
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                     "mnopqrstnopqrstu") == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    CHECK(sha256_hex(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    // Checked with Python's hashlib: bytes(range(256)) * 3.
    CHECK(sha256_hex(all_bytes(768)) == "f3a25aa93aa2fbba28d79260535bbd6a5eb0fc1c24a8b0f04e12b484c1dfe363");
  });
}

TEST_CASE("streaming in any split gives the one-shot digest") {
  for_each_implementation([] {
    const std::string message = all_bytes(300);
    for (size_t n : {0, 1, 55, 56, 57, 63, 64, 65, 127, 128, 129, 300}) {
      const std::string prefix = message.substr(0, n);
      const std::string whole = sha256_hex(prefix);
      for (size_t split : {size_t{0}, size_t{1}, n / 3, n / 2, n}) {
        if (split > n) continue;
        INFO("length ", n, " split at ", split);
        Sha256 h;
        h.update(prefix.substr(0, split));
        h.update(prefix.substr(split, (n - split) / 2));
        h.update(prefix.substr(split + (n - split) / 2));
        CHECK(h.hex_digest() == whole);
      }
      // Byte by byte.
      Sha256 h;
      for (char c : prefix) h.update(&c, 1);
      CHECK(h.hex_digest() == whole);
    }
    // After a digest the object starts over.
    Sha256 h;
    h.update("x");
    (void)h.digest();
    h.update("abc");
    CHECK(h.hex_digest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });
}

TEST_CASE("sha256_file_hex streams a file (larger than its 1 MiB buffer) and names a missing one") {
  const fs::path dir = fs::temp_directory_path() / ("hydra-test-sha256-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "a.bin").string();
  {
    std::ofstream out(path, std::ios::binary);
    const std::string block(1000000, 'a');
    out << block << block << block;  // 3,000,000 bytes: spans three reads
  }
  CHECK(sha256_file_hex(path) == "2a152c894398719c0570f83fac34ac03a0f6e8e474b995c2403aa5434f7b9dd4");  // hashlib
  std::ofstream(path, std::ios::binary | std::ios::trunc).close();
  CHECK(sha256_file_hex(path) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string missing = (dir / "missing.bin").string();
  CHECK_THROWS_WITH_AS(sha256_file_hex(missing), doctest::Contains(missing.c_str()), hydra::Error);
  fs::remove_all(dir);
}
