// io/token_data: every format (raw uint16/uint32, llm.c shards of both versions, .npy of each integer
// type, zstd around each) built byte by byte here and read back with its values, the dtype rule, windows,
// and one tiny file per rejection rule asserting its message.
#include <doctest/doctest.h>

#include <unistd.h>
#include <zstd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "io/npy.h"
#include "io/token_data.h"
#include "io/zstd.h"
#include "support/op_harness.h"
#include "support/temp_dir.h"
#include "support/zstd_frame.h"

using namespace hydra;
using namespace hydra::io;
namespace fs = std::filesystem;

using test::read_bytes;
using test::TempDir;
using test::write_bytes;

namespace {

template <class T>
std::string le_bytes(const std::vector<T>& values) {
  std::string s(values.size() * sizeof(T), '\0');
  if (!values.empty()) std::memcpy(s.data(), values.data(), s.size());
  return s;
}

// An llm.c shard as dev/data/data_common.py writes it: 256 int32 (magic, version, count, zeros), then
// the tokens.
template <class T>
std::string llmc_shard(int32_t magic, int32_t version, int32_t count, const std::vector<T>& tokens) {
  std::vector<int32_t> header(256, 0);
  header[0] = magic;
  header[1] = version;
  header[2] = count;
  return le_bytes(header) + le_bytes(tokens);
}

std::string npy_file(const std::string& descr, const std::string& shape, const std::string& data) {
  const std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }\n";
  std::string s = std::string("\x93NUMPY\x01\x00", 8);
  const uint16_t n = static_cast<uint16_t>(dict.size());
  s.append(reinterpret_cast<const char*>(&n), 2);
  return s + dict + data;
}

std::string zstd_bytes(const std::string& plain, bool with_size = true) { return test::zstd_frame(plain, with_size); }

void expect_error(const std::string& name, const std::function<void()>& call,
                  const std::vector<std::string>& must_contain) {
  test::check_error_case({name, call, must_contain});
}

std::vector<int64_t> all_tokens(const TokenFile& f) {
  std::vector<int64_t> v(static_cast<size_t>(f.size()));
  f.read(0, f.size(), v.data());
  return v;
}

}  // namespace

TEST_CASE("the default dtype follows the vocabulary size") {
  CHECK(default_token_dtype(65) == TokenDType::UInt16);  // nanoGPT's shakespeare_char: uint16
  CHECK(default_token_dtype(50304) == TokenDType::UInt16);
  CHECK(default_token_dtype(65536) == TokenDType::UInt16);  // ids 0..65535 fit
  CHECK(default_token_dtype(65537) == TokenDType::UInt32);
  CHECK(default_token_dtype(100352) == TokenDType::UInt32);  // OLMo-2's dolma2 tokenizer
  CHECK_THROWS_WITH_AS(default_token_dtype(0), doctest::Contains("at least 1"), hydra::Error);
  CHECK_THROWS_WITH_AS(default_token_dtype(int64_t{1} << 33), doctest::Contains("does not fit in uint32"),
                       hydra::Error);
  CHECK(parse_token_dtype("uint32") == TokenDType::UInt32);
  CHECK_THROWS_WITH_AS(parse_token_dtype("int8"), doctest::Contains("unknown token dtype 'int8'"), hydra::Error);
}

TEST_CASE("raw headerless files: uint16 and uint32, chosen by the option or the vocabulary") {
  TempDir dir;
  const std::vector<uint16_t> u16 = {0, 1, 50256, 65535, 7};
  write_bytes(dir.file("train.bin"), le_bytes(u16));
  TokenFile f = open_token_file(dir.file("train.bin"), {.vocab_size = 65536});
  CHECK(f.format() == TokenFormat::Raw);
  CHECK(f.dtype() == TokenDType::UInt16);
  CHECK_FALSE(f.compressed());
  CHECK(f.size() == 5);
  CHECK(all_tokens(f) == std::vector<int64_t>{0, 1, 50256, 65535, 7});
  CHECK(f.at(3) == 65535);
  CHECK(f.min_max() == std::pair<int64_t, int64_t>{0, 65535});
  // Windows as int64 and int32, as tensors too.
  int32_t w[3];
  f.read(1, 3, w);
  CHECK(std::vector<int32_t>(w, w + 3) == std::vector<int32_t>{1, 50256, 65535});
  Tensor t = f.window(2, 2, DType::Int32);
  CHECK(t.dtype() == DType::Int32);
  CHECK(t.to_vector<int64_t>() == std::vector<int64_t>{50256, 65535});
  CHECK(f.window(0, 0).numel() == 0);
  f.check_window(5);
  f.validate_tokens(65536);

  // The same 8 bytes read as uint32: explicitly, or because the vocabulary needs more than 16 bits.
  const std::vector<uint32_t> u32 = {100000, 3, 4294967295u, 0};
  write_bytes(dir.file("big.bin"), le_bytes(u32));
  for (const TokenFileOptions& options :
       {TokenFileOptions{.dtype = TokenDType::UInt32}, TokenFileOptions{.vocab_size = 100352}}) {
    f = open_token_file(dir.file("big.bin"), options);
    CHECK(f.dtype() == TokenDType::UInt32);
    CHECK(all_tokens(f) == std::vector<int64_t>{100000, 3, 4294967295, 0});
  }
  f = open_token_file(dir.file("big.bin"), {.dtype = TokenDType::UInt16});
  CHECK(f.size() == 8);
  CHECK(f.at(0) == (100000 & 0xffff));
  // OLMo-core's headerless ".npy": the name does not matter, only the missing \x93NUMPY magic.
  write_bytes(dir.file("part-0-00000.npy"), le_bytes(u32));
  f = open_token_file(dir.file("part-0-00000.npy"), {.vocab_size = 100352});
  CHECK(f.format() == TokenFormat::Raw);
  CHECK(all_tokens(f) == std::vector<int64_t>{100000, 3, 4294967295, 0});
  // int32 output refuses an id that does not fit rather than wrapping it.
  f = open_token_file(dir.file("big.bin"), {.dtype = TokenDType::UInt32});
  int32_t one;
  expect_error("id beyond int32", [&] { f.read(2, 1, &one); }, {"token 4294967295 at position 2 does not fit in int32"});
}

TEST_CASE("llm.c shards: version 1 (uint16) and version 7 (uint32), detected by their magic") {
  TempDir dir;
  write_bytes(dir.file("v1.bin"), llmc_shard<uint16_t>(20240520, 1, 4, {50256, 10, 20, 30}));
  TokenFile f = open_token_file(dir.file("v1.bin"));  // no vocabulary needed: the header says uint16
  CHECK(f.format() == TokenFormat::LlmcShard);
  CHECK(f.dtype() == TokenDType::UInt16);
  CHECK(all_tokens(f) == std::vector<int64_t>{50256, 10, 20, 30});

  write_bytes(dir.file("v7.bin"), llmc_shard<uint32_t>(20240801, 7, 3, {128000, 1, 128255}));
  f = open_token_file(dir.file("v7.bin"), {.dtype = TokenDType::UInt32, .vocab_size = 128256});
  CHECK(f.format() == TokenFormat::LlmcShard);
  CHECK(f.dtype() == TokenDType::UInt32);
  CHECK(all_tokens(f) == std::vector<int64_t>{128000, 1, 128255});
  f.validate_tokens(128256);

  // An empty shard (count 0) opens; it just holds no window.
  write_bytes(dir.file("empty.bin"), llmc_shard<uint16_t>(20240520, 1, 0, {}));
  CHECK(open_token_file(dir.file("empty.bin")).size() == 0);

  // The parser alone, on bytes (the fuzzing entry point).
  const std::string bytes = llmc_shard<uint16_t>(20240520, 1, 2, {1, 2});
  const TokenLayout layout = parse_llmc_shard_header(bytes, bytes.size(), "memory");
  CHECK(layout.count == 2);
  CHECK(layout.data_start == 1024);
}

TEST_CASE(".npy token files of every integer type") {
  TempDir dir;
  const Tensor ids = from_vector(std::vector<int64_t>{5, 0, 65535, 9}, {4});
  for (const std::string descr : {"<u2", "<u4", "<i8"}) {
    INFO(descr);
    save_npy(dir.file("ids.npy"), ids, descr);
    const TokenFile f = open_token_file(dir.file("ids.npy"));
    CHECK(f.format() == TokenFormat::Npy);
    CHECK(all_tokens(f) == std::vector<int64_t>{5, 0, 65535, 9});
  }
  save_npy(dir.file("i32.npy"), from_vector(std::vector<int32_t>{3, 1, 2}, {3}));
  TokenFile f = open_token_file(dir.file("i32.npy"));
  CHECK(f.dtype() == TokenDType::Int32);
  CHECK(all_tokens(f) == std::vector<int64_t>{3, 1, 2});
  // A uint32 .npy with an explicit matching dtype.
  write_bytes(dir.file("u4.npy"), npy_file("<u4", "(2,)", le_bytes(std::vector<uint32_t>{70000, 1})));
  f = open_token_file(dir.file("u4.npy"), {.dtype = TokenDType::UInt32});
  CHECK(all_tokens(f) == std::vector<int64_t>{70000, 1});
}

TEST_CASE("zstd-compressed token files of each format, with and without a declared size") {
  TempDir dir;
  std::vector<uint16_t> many(100000);
  for (size_t i = 0; i < many.size(); ++i) many[i] = static_cast<uint16_t>((i * 7919) % 50000);
  struct Case {
    std::string name, plain;
    TokenFormat format;
  };
  // NOTE: built with append, not `"(" + string`: GCC 12 warns falsely (-Wrestrict) on the latter.
  const std::string shape = std::string("(").append(std::to_string(many.size())).append(",)");
  const std::vector<Case> cases = {
      {"train.bin.zst", le_bytes(many), TokenFormat::Raw},
      {"shard.bin.zst", llmc_shard<uint16_t>(20240520, 1, static_cast<int32_t>(many.size()), many),
       TokenFormat::LlmcShard},
      {"ids.npy.zst", npy_file("<u2", shape, le_bytes(many)), TokenFormat::Npy},
  };
  for (const Case& c : cases) {
    for (bool with_size : {true, false}) {
      INFO(c.name, with_size ? " with size" : " without size");
      write_bytes(dir.file(c.name), zstd_bytes(c.plain, with_size));
      const TokenFile f = open_token_file(dir.file(c.name), {.vocab_size = 50304});
      CHECK(f.compressed());
      CHECK(f.format() == c.format);
      CHECK(f.size() == static_cast<int64_t>(many.size()));
      CHECK(f.at(0) == 0);
      CHECK(f.at(99999) == static_cast<int64_t>((99999ull * 7919) % 50000));
      f.validate_tokens(50000);
    }
  }
  // Detected by its magic, whatever the name; several frames concatenated (as `cat a.zst b.zst`).
  write_bytes(dir.file("noext.bin"), zstd_bytes(le_bytes(std::vector<uint16_t>{1, 2})) +
                                         zstd_bytes(le_bytes(std::vector<uint16_t>{3}), false));
  CHECK(all_tokens(open_token_file(dir.file("noext.bin"), {.vocab_size = 10})) == std::vector<int64_t>{1, 2, 3});
}

TEST_CASE("bad token files are rejected with a message naming the file") {
  TempDir dir;
  int counter = 0;
  auto rejects = [&](const std::string& name, const std::string& bytes, const TokenFileOptions& options,
                     std::vector<std::string> must_contain, const std::string& suffix = ".bin") {
    const std::string path = dir.file("bad" + std::to_string(counter++) + suffix);
    write_bytes(path, bytes);
    must_contain.push_back(path);
    expect_error(name, [&] { open_token_file(path, options); }, must_contain);
  };
  const TokenFileOptions vocab{.vocab_size = 50304};

  // Raw files.
  rejects("odd size", "abc", vocab, {"is 3 bytes, not a multiple of 2 (uint16 tokens)"});
  rejects("not a multiple of 4", "abcdef", {.dtype = TokenDType::UInt32}, {"not a multiple of 4 (uint32"});
  rejects("no dtype and no vocabulary", "abcd", {}, {"has no header", "give the token dtype"});
  rejects("int32 requested", "abcd", {.dtype = TokenDType::Int32}, {"must be auto, uint16 or uint32, got int32"});

  // llm.c shards.
  rejects("short header", le_bytes(std::vector<int32_t>{20240520, 1, 0}), vocab,
          {"invalid llm.c shard", "the file is 12 bytes, shorter than the 1024-byte header"});
  rejects("bad version", llmc_shard<uint16_t>(20240520, 7, 1, {1}), vocab,
          {"version 7 with magic 20240520; expected version 1"});
  rejects("bad version v7", llmc_shard<uint32_t>(20240801, 1, 1, {1}), vocab,
          {"version 1 with magic 20240801; expected version 7"});
  rejects("negative count", llmc_shard<uint16_t>(20240520, 1, -5, {}), vocab, {"negative token count -5"});
  rejects("count beyond the file", llmc_shard<uint16_t>(20240520, 1, 3, {1, 2}), vocab,
          {"the header says 3 uint16 tokens (1030 bytes with the header) but the file has 1028 bytes"});
  rejects("bytes after the tokens", llmc_shard<uint32_t>(20240801, 7, 1, {1, 2}), vocab,
          {"says 1 uint32 tokens (1028 bytes", "has 1032 bytes"});
  rejects("dtype conflicts with the header", llmc_shard<uint16_t>(20240520, 1, 1, {1}), {.dtype = TokenDType::UInt32},
          {"holds uint16 tokens (its llm.c shard header says so) but uint32 was requested"});
  const std::string not_llmc = le_bytes(std::vector<int32_t>(256, 0));
  expect_error("bad magic (parser)", [&] { parse_llmc_shard_header(not_llmc, not_llmc.size(), "mem.bin"); },
               {"mem.bin", "magic 0, expected 20240520 (uint16 tokens) or 20240801 (uint32 tokens)"});

  // .npy files.
  rejects("2-D npy", npy_file("<u2", "(1, 2)", std::string(4, '\0')), vocab, {"must be 1-D, got shape [1, 2]"}, ".npy");
  rejects("float npy", npy_file("<f4", "(1,)", std::string(4, '\0')), vocab,
          {"must hold integers", "got '<f4'"}, ".npy");
  rejects("npy data short", npy_file("<u2", "(3,)", std::string(4, '\0')), vocab, {"needs 6 bytes but 4 follow"}, ".npy");
  rejects("npy dtype conflict", npy_file("<i8", "(1,)", std::string(8, '\0')), {.dtype = TokenDType::UInt16},
          {"holds int64 tokens (its npy header says so) but uint16 was requested"}, ".npy");

  // zstd.
  const std::string good = zstd_bytes(le_bytes(std::vector<uint16_t>(5000, 42)));
  rejects(".zst that is not zstd", "abcd", vocab, {"does not start with the zstd frame magic"}, ".zst");
  rejects("truncated zstd", good.substr(0, good.size() - 6), vocab, {"truncated zstd file"}, ".zst");
  std::vector<uint16_t> noise(32);  // incompressible, so zstd stores the block raw
  for (size_t i = 0; i < noise.size(); ++i) noise[i] = static_cast<uint16_t>((i * 40503u + 12345u) * 2654435761u >> 7);
  std::string flipped = zstd_bytes(le_bytes(noise));
  flipped[flipped.size() - 6] ^= 0x01;  // inside the raw data of the block: only the frame checksum sees it
  rejects("checksum mismatch", flipped, vocab, {"corrupt zstd file", "checksum"}, ".zst");
  // A 17-byte frame whose header claims 1 TiB: refused before any allocation.
  std::string liar("\x28\xb5\x2f\xfd\xe0", 5);
  const uint64_t tib = uint64_t{1} << 40;
  liar.append(reinterpret_cast<const char*>(&tib), 8);
  liar += std::string("\x0b\x00\x00\x07", 4);  // a last RLE block of one byte
  rejects("size claim beyond any expansion", liar, vocab, {"declare 1099511627776 bytes, more than 17 compressed"}, ".zst");
  const std::string big = zstd_bytes(std::string(10000, '\0'));
  rejects("declared size over the cap", big, {.vocab_size = 10, .max_decompressed_bytes = 1000},
          {"decompresses to 10000 bytes, more than the limit of 1000"}, ".zst");
  rejects("streamed size over the cap", zstd_bytes(std::string(10000, '\0'), false),
          {.vocab_size = 10, .max_decompressed_bytes = 1000}, {"decompresses to more than the limit of 1000"}, ".zst");
  rejects("compressed twice", zstd_bytes(good), vocab, {"zstd-compressed again"}, ".zst");
  rejects("inner format error", zstd_bytes("abc"), vocab, {"(decompressed) is 3 bytes, not a multiple of 2"}, ".zst");

  const std::string missing = dir.file("missing.bin");
  expect_error("missing file", [&] { open_token_file(missing, vocab); }, {"cannot open token file", missing});
  expect_error("a directory", [&] { open_token_file(dir.path.string(), vocab); }, {"not a regular file"});
}

TEST_CASE("token values, windows and lengths are checked against the vocabulary and the window") {
  TempDir dir;
  write_bytes(dir.file("t.bin"), le_bytes(std::vector<uint16_t>{1, 2, 50304, 3, 60000}));
  const TokenFile f = open_token_file(dir.file("t.bin"), {.vocab_size = 50304});
  expect_error("token >= vocab", [&] { f.validate_tokens(50304); },
               {dir.file("t.bin"), "token 50304 at position 2 is outside the vocabulary [0, 50304)"});
  f.validate_tokens(60001);
  expect_error("shorter than a window", [&] { f.check_window(6); },
               {dir.file("t.bin"), "holds 5 tokens, fewer than one training window of 6 tokens"});
  f.check_window(5);
  expect_error("zero window", [&] { f.check_window(0); }, {"at least 1"});
  // An empty file is a valid file of no tokens, and shorter than any window.
  write_bytes(dir.file("empty.bin"), "");
  const TokenFile none = open_token_file(dir.file("empty.bin"), {.vocab_size = 10});
  CHECK(none.size() == 0);
  CHECK(none.min_max() == std::pair<int64_t, int64_t>{0, 0});
  none.validate_tokens(10);
  expect_error("empty file", [&] { none.check_window(1); }, {"holds 0 tokens, fewer than one training window of 1"});
  int64_t out[4];
  expect_error("window past the end", [&] { f.read(3, 3, out); }, {"window [3, 6) is outside its 5 tokens"});
  expect_error("negative start", [&] { f.read(-1, 1, out); }, {"window [-1, 0)"});
  expect_error("float window", [&] { f.window(0, 1, DType::Float32); }, {"int64 or int32, not float32"});

  // Negative ids can only come from a signed .npy; they are caught too.
  save_npy(dir.file("neg.npy"), from_vector(std::vector<int32_t>{4, -1}, {2}));
  expect_error("negative token", [&] { open_token_file(dir.file("neg.npy")).validate_tokens(10); },
               {"token -1 at position 1 is outside the vocabulary [0, 10)"});

  // A large file validates through its blocks (the offending id in the second 64 Ki block).
  std::vector<uint16_t> many(200000, 5);
  many[150001] = 9;
  write_bytes(dir.file("many.bin"), le_bytes(many));
  const TokenFile m = open_token_file(dir.file("many.bin"), {.vocab_size = 100});
  m.validate_tokens(10);
  expect_error("late offender", [&] { m.validate_tokens(9); }, {"token 9 at position 150001"});
  CHECK(m.min_max() == std::pair<int64_t, int64_t>{5, 9});
}

TEST_CASE("random corruptions of every format are hydra::Errors or valid files, never crashes") {
  // A poor man's fuzzer for the no-I/O parsers: 1-4 random bytes overwritten, or a random truncation,
  // of a valid file of each format. Any exception other than hydra::Error fails the test.
  std::mt19937 random(2024);
  const std::vector<std::string> seeds = {
      llmc_shard<uint16_t>(20240520, 1, 4, {1, 2, 3, 4}),
      llmc_shard<uint32_t>(20240801, 7, 2, {70000, 5}),
      npy_file("<u2", "(3,)", le_bytes(std::vector<uint16_t>{1, 2, 3})),
      npy_file("<i8", "(2,)", le_bytes(std::vector<int64_t>{9, 8})),
      zstd_bytes(llmc_shard<uint16_t>(20240520, 1, 3, {7, 8, 9})),
      zstd_bytes(le_bytes(std::vector<uint16_t>(300, 4)), false),
  };
  int valid = 0, rejected = 0;
  for (const std::string& seed : seeds) {
    for (int trial = 0; trial < 400; ++trial) {
      std::string bytes = seed;
      if (trial % 4 == 3) {
        bytes.resize(std::uniform_int_distribution<size_t>(0, bytes.size() - 1)(random));
      } else {
        const int n = std::uniform_int_distribution<int>(1, 4)(random);
        for (int k = 0; k < n; ++k)
          bytes[std::uniform_int_distribution<size_t>(0, bytes.size() - 1)(random)] =
              static_cast<char>(std::uniform_int_distribution<int>(0, 255)(random));
      }
      try {
        std::string plain = bytes;
        if (has_zstd_magic(bytes)) plain = zstd_decompress(bytes, "fuzz.zst", 1 << 20);
        const TokenLayout layout = parse_token_layout(plain, plain.size(), "fuzz", {.vocab_size = 50304});
        // A layout that parses describes exactly the bytes of the file after its header.
        const uint64_t item = layout.dtype == TokenDType::UInt16 ? 2 : layout.dtype == TokenDType::Int64 ? 8 : 4;
        CHECK(layout.count >= 0);
        CHECK(layout.data_start + static_cast<uint64_t>(layout.count) * item == plain.size());
        ++valid;
      } catch (const hydra::Error&) {
        ++rejected;
      }
    }
  }
  CHECK(valid + rejected == 2400);
  CHECK(rejected > 0);
}
