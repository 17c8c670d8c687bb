// io/input_file: the one way a file is opened for reading. Anything but a regular file — a FIFO (which
// would block the open forever), /dev/zero (which never ends), a symlink to either, a directory — is
// an error naming the path and what it is, at once; reads stop at the size the file had when opened;
// a cap is a message, not an allocation.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <future>

#include "io/input_file.h"
#include "io/json_file.h"
#include "io/mmap_file.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "io/sha256.h"
#include "io/token_data.h"
#include "io/tokenizer.h"
#include "support/temp_dir.h"
#include "tensor/error.h"

using namespace hydra;
using namespace hydra::io;
namespace fs = std::filesystem;

namespace {

// Runs `read` on another thread and fails (instead of hanging the suite) if it takes over 10 s.
void expect_refused_quickly(const std::string& what, const std::function<void()>& read,
                            const std::string& must_contain) {
  INFO(what);
  auto done = std::async(std::launch::async, [&] {
    try {
      read();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  });
  REQUIRE_MESSAGE(done.wait_for(std::chrono::seconds(10)) == std::future_status::ready, what, " blocked");
  const std::string message = done.get();
  CHECK_MESSAGE(message.find(must_contain) != std::string::npos, message);
}

}  // namespace

TEST_CASE("InputFile reads regular files within their size and a cap") {
  test::TempDir dir("input-file");
  const std::string path = dir.write("a.bin", "hello world");
  const InputFile in = InputFile::open(path, "test file");
  CHECK(in.size() == 11);
  CHECK(in.read_prefix(5) == "hello");
  CHECK(in.read_prefix(100) == "hello world");
  CHECK(in.read_all(11) == "hello world");
  char buffer[5];
  in.read_at(buffer, 5, 6);
  CHECK(std::string(buffer, 5) == "world");
  CHECK_THROWS_WITH_AS(in.read_all(10), doctest::Contains("it is 11 bytes, more than the limit of 10 bytes"), Error);
  CHECK(read_file(dir.write("empty", ""), "test file", 0).empty());
  // A symlink to a regular file is followed.
  fs::create_symlink(path, dir.file("link"));
  CHECK(read_file(dir.file("link"), "test file", 100) == "hello world");
  // A file that shrinks after it was opened: the read stops with a message, not garbage.
  const InputFile shrinking = InputFile::open(path, "test file");
  REQUIRE(::truncate(path.c_str(), 3) == 0);
  std::string all(11, '\0');
  CHECK_THROWS_WITH_AS(shrinking.read_at(all.data(), 11, 0), doctest::Contains("it ended at byte 3 while being read"),
                       Error);
}

TEST_CASE("InputFile refuses FIFOs, devices, symlinks to them and directories without blocking") {
  test::TempDir dir("input-file");
  const std::string fifo = dir.file("pipe");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  fs::create_symlink("/dev/zero", dir.file("zero-link"));
  fs::create_symlink(fifo, dir.file("pipe-link"));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {fifo, "it is a FIFO (named pipe), not a regular file"},
      {dir.file("pipe-link"), "it is a FIFO"},
      {"/dev/zero", "it is a character device, not a regular file"},
      {dir.file("zero-link"), "it is a character device"},
      {dir.path.string(), "it is a directory, not a regular file"},
      {dir.file("missing"), "No such file or directory"},
  };
  for (const auto& c : cases) {
    const std::string& path = c.first;  // (not a structured binding: clang 14 cannot capture those)
    const std::string& message = c.second;
    expect_refused_quickly("InputFile " + path, [&] { InputFile::open(path, "test file"); }, message);
    // Every reader goes through it.
    expect_refused_quickly("read_json_file " + path, [&] { read_json_file(path, "config", 1 << 20); }, message);
    expect_refused_quickly("load_npy " + path, [&] { load_npy(path); }, message);
    expect_refused_quickly("load_safetensors " + path, [&] { load_safetensors(path); }, message);
    expect_refused_quickly("read_safetensors_header " + path, [&] { read_safetensors_header(path); }, message);
    expect_refused_quickly("open_token_file " + path, [&] { open_token_file(path, {TokenDType::UInt16}); }, message);
    expect_refused_quickly("Tokenizer::load " + path, [&] { Tokenizer::load(path); }, message);
    expect_refused_quickly("sha256_file_hex " + path, [&] { sha256_file_hex(path); }, message);
    expect_refused_quickly("MappedFile " + path, [&] { MappedFile::open(path, "test file"); }, message);
  }
}
