// io/sha256: the FIPS 180-4 test vectors ("", "abc", the two-block message, a million 'a'), a file
// hashed in chunks equals the same bytes hashed at once, and an unreadable file is an error.
#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "io/sha256.h"
#include "tensor/error.h"

using namespace hydra;
using namespace hydra::io;

TEST_CASE("sha256_hex matches the standard test vectors") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256_hex(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256_file_hex hashes the file's bytes; a missing file is an error naming it") {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("hydra-test-sha256-" + std::to_string(::getpid()))).string();
  std::string bytes;
  for (int i = 0; i < 3 * (1 << 20) + 17; ++i) bytes += static_cast<char>(i * 31 % 251);  // spans read chunks
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  CHECK(sha256_file_hex(path) == sha256_hex(bytes));
  std::filesystem::remove(path);
  CHECK_THROWS_WITH_AS(sha256_file_hex(path), doctest::Contains(path.c_str()), Error);
}
