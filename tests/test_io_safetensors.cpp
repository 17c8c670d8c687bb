// io/safetensors and io/atomic_file: round trips of every dtype and shape (0-d and 0-size included), the
// bytes the writer lays out, files written by scripts/make_fixtures.py read back exactly (values checked
// against tests/fixtures/known_values.json), and one byte-literal file per rejection rule, each asserting
// its message.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "autograd/ops.h"
#include "io/atomic_file.h"
#include "io/half.h"
#include "io/mmap_file.h"
#include "io/safetensors.h"
#include "io/safetensors_index.h"
#include "support/fixtures.h"
#include "tensor/copy.h"
#include "support/op_harness.h"
#include "support/temp_dir.h"

using namespace hydra;
using namespace hydra::io;
namespace fs = std::filesystem;

using test::read_bytes;
using test::TempDir;
using test::write_bytes;

namespace {

std::string u64_le(uint64_t n) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &n, 8);
  return s;
}

// A safetensors file from its header text and data bytes (no padding: the format does not require it).
std::string st_bytes(const std::string& header, const std::string& data = "") {
  return u64_le(header.size()) + header + data;
}

// Values 0, 1, 2, ... (times a non-integer step for floats) in the dtype, so every element differs.
Tensor sample(const Shape& shape, DType dtype) {
  const int64_t n = shape_numel(shape);
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = is_floating(dtype) ? -1.5 + 0.37 * i : 3 * i - 7;
  return kernels::cast_raw(from_vector(v, shape), dtype);
}

bool same_tensor(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  return a.to_vector<double>() == b.to_vector<double>();
}

void expect_error(const std::string& name, const std::function<void()>& call,
                  const std::vector<std::string>& must_contain) {
  test::check_error_case({name, call, must_contain});
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Round trips and layout
// ---------------------------------------------------------------------------------------------------

TEST_CASE("save_safetensors then load_safetensors gives back every dtype and shape, with the metadata") {
  TempDir dir;
  std::map<std::string, Tensor> tensors;
  const std::vector<Shape> shapes = {{}, {0}, {3, 0, 2}, {1}, {5}, {2, 3}, {2, 3, 4}};
  for (DType dtype : {DType::Float32, DType::Float64, DType::Int32, DType::Int64})
    for (size_t i = 0; i < shapes.size(); ++i)
      tensors[std::string(dtype_name(dtype)) + ".s" + std::to_string(i)] = sample(shapes[i], dtype);
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"config", "{\"a\": [1, 2]}"}, {"empty", ""}};
  const std::string path = dir.file("all.safetensors");
  save_safetensors(path, tensors, meta);

  std::map<std::string, std::string> meta_back;
  const auto back = load_safetensors(path, &meta_back);
  CHECK(meta_back == meta);
  REQUIRE(back.size() == tensors.size());
  for (const auto& entry : tensors) {
    const std::string& name = entry.first;
    const Tensor& t = entry.second;
    INFO(name);
    REQUIRE(back.count(name) == 1);
    CHECK(same_tensor(back.at(name), t));
    CHECK(back.at(name).is_contiguous());
  }
  // No temp file is left behind.
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
}

TEST_CASE("values survive bit-exactly, including signed zeros, extremes, infinities and NaN") {
  TempDir dir;
  const std::vector<double> specials = {0.0, -0.0, 1e-310, -1e308, 1.0 / 3.0, INFINITY, -INFINITY, NAN};
  const std::vector<int64_t> ints = {INT64_MIN, -1, 0, 1, INT64_MAX};
  std::map<std::string, Tensor> tensors = {
      {"f64", from_vector(specials, {8})},
      {"f32", kernels::cast_raw(from_vector(specials, {8}), DType::Float32)},
      {"i64", from_vector(ints, {5})},
      {"i32", from_vector(std::vector<int32_t>{INT32_MIN, -1, 0, INT32_MAX}, {4})},
  };
  save_safetensors(dir.file("x.safetensors"), tensors);
  const auto back = load_safetensors(dir.file("x.safetensors"));
  for (const auto& entry : tensors) {
    const std::string& name = entry.first;
    const Tensor& t = entry.second;
    INFO(name);
    const Tensor& b = back.at(name);
    REQUIRE(b.shape() == t.shape());
    const size_t nbytes = static_cast<size_t>(t.numel()) * dtype_size(t.dtype());
    CHECK(std::memcmp(b.raw_data(), t.raw_data(), nbytes) == 0);
  }
}

TEST_CASE("a non-contiguous tensor is written as its values in row-major order") {
  TempDir dir;
  const Tensor base = sample({3, 4}, DType::Float64);
  const Tensor t = transpose(base, 0, 1);  // shape (4, 3), strided
  REQUIRE_FALSE(t.is_contiguous());
  save_safetensors(dir.file("t.safetensors"), {{"t", t}});
  const Tensor back = load_safetensors(dir.file("t.safetensors")).at("t");
  CHECK(back.shape() == Shape{4, 3});
  CHECK(back.to_vector<double>() == t.to_vector<double>());
}

TEST_CASE("the writer's bytes: 8-byte aligned header, names sorted, data ordered by element size then name") {
  TempDir dir;
  const std::string path = dir.file("layout.safetensors");
  save_safetensors(path,
                   {{"b", sample({3}, DType::Float32)},
                    {"a", sample({1}, DType::Int32)},
                    {"c", sample({2}, DType::Float64)},
                    {"d", sample({1}, DType::Int64)}},
                   {{"k", "v"}});
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  CHECK((8 + n) % 8 == 0);
  const std::string header = bytes.substr(8, n);
  CHECK(header.rfind("{\"__metadata__\":{\"k\":\"v\"},\"a\":", 0) == 0);
  CHECK(header.find("\"b\":") < header.find("\"c\":"));
  CHECK(header.find_last_not_of(' ') == header.find_last_of('}'));
  // 8-byte tensors first (c, d), then the 4-byte ones (a, b): each starts aligned to its element size.
  const SafetensorsHeader h = read_safetensors_header(path);
  std::vector<std::string> order;
  for (const auto& t : h.tensors) order.push_back(t.name);
  CHECK(order == std::vector<std::string>{"c", "d", "a", "b"});
  CHECK(h.tensors[0].data_begin == 0);
  CHECK(h.tensors[1].data_begin == 16);
  CHECK(h.tensors[2].data_begin == 24);
  CHECK(h.tensors[3].data_begin == 28);
  CHECK(h.data_start + 40 == bytes.size());
  CHECK(h.metadata == std::map<std::string, std::string>{{"k", "v"}});
}

TEST_CASE("a file with no tensors and no metadata round-trips") {
  TempDir dir;
  save_safetensors(dir.file("empty.safetensors"), {});
  const std::string bytes = read_bytes(dir.file("empty.safetensors"));
  CHECK(bytes == u64_le(8) + "{}      ");
  std::map<std::string, std::string> meta = {{"stale", "x"}};
  CHECK(load_safetensors(dir.file("empty.safetensors"), &meta).empty());
  CHECK(meta.empty());
}

TEST_CASE("saving over an existing file replaces it; a failed save leaves the old file untouched") {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  save_safetensors(path, {{"x", sample({2}, DType::Float32)}});
  save_safetensors(path, {{"y", sample({3}, DType::Int64)}});
  auto back = load_safetensors(path);
  CHECK(back.size() == 1);
  CHECK(back.count("y") == 1);

  const std::string before = read_bytes(path);
  expect_error("meta tensor", [&] { save_safetensors(path, {{"z", meta({2, 3})}}); }, {path, "'z'", "meta"});
  expect_error("reserved name", [&] { save_safetensors(path, {{"__metadata__", sample({1}, DType::Float32)}}); },
               {path, "__metadata__"});
  expect_error("name not UTF-8", [&] { save_safetensors(path, {{"w\xff", sample({1}, DType::Float32)}}); },
               {path, "not valid UTF-8"});
  CHECK(read_bytes(path) == before);
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);

  const std::string missing_dir = dir.file("no/such/dir/m.safetensors");
  expect_error("missing directory", [&] { save_safetensors(missing_dir, {}); }, {missing_dir, "cannot"});
}

TEST_CASE("AtomicFile: nothing appears before commit; an abandoned file leaves no trace") {
  TempDir dir;
  const std::string path = dir.file("a.txt");
  {
    AtomicFile f(path);
    f.write("hello");
    CHECK_FALSE(fs::exists(path));
    CHECK(fs::exists(f.temp_path()));
    CHECK(fs::path(f.temp_path()).parent_path() == dir.path);
    f.commit();
  }
  CHECK(read_bytes(path) == "hello");
  std::string temp;
  {
    AtomicFile f(path);
    f.write("partial");
    temp = f.temp_path();
  }  // not committed
  CHECK(read_bytes(path) == "hello");
  CHECK_FALSE(fs::exists(temp));
  write_file_atomic(path, "bye");
  CHECK(read_bytes(path) == "bye");
  AtomicFile f(dir.file("b.txt"));
  f.commit();
  expect_error("write after commit", [&] { f.write("x"); }, {"b.txt", "committed"});
}

// ---------------------------------------------------------------------------------------------------
// Files written by scripts/make_fixtures.py (PyTorch / NumPy)
// ---------------------------------------------------------------------------------------------------

TEST_CASE("the PyTorch fixtures read back exactly the values Python printed (known_values.json)") {
  std::ifstream in(hydra::test::fixture_path("known_values.json"));
  REQUIRE(in.good());
  const nlohmann::json known = nlohmann::json::parse(in);
  for (const auto& file_entry : known.items()) {
    const std::string& file = file_entry.key();
    const nlohmann::json& expected = file_entry.value();
    INFO(file);
    std::map<std::string, std::string> meta;
    const auto tensors = load_safetensors(hydra::test::fixture_path(file), &meta);
    CHECK(tensors.size() == expected.at("tensor_count").get<size_t>());
    CHECK(meta.at("format") == "hydra-fixture");
    for (const auto& tensor_entry : expected.items()) {
      const std::string& name = tensor_entry.key();
      const nlohmann::json& e = tensor_entry.value();
      if (name == "tensor_count") continue;
      INFO(name);
      REQUIRE(tensors.count(name) == 1);
      const Tensor& t = tensors.at(name);
      CHECK(std::string(safetensors_dtype_name(t.dtype())) == e.at("dtype").get<std::string>());
      CHECK(t.shape() == e.at("shape").get<Shape>());
      const std::vector<double> all = t.to_vector<double>();
      const std::vector<double> values = e.at("values").get<std::vector<double>>();
      std::vector<int64_t> index;
      if (e.contains("flat_index")) {
        index = e.at("flat_index").get<std::vector<int64_t>>();
      } else {
        for (size_t i = 0; i < values.size(); ++i) index.push_back(static_cast<int64_t>(i));
      }
      REQUIRE(index.size() == values.size());
      for (size_t i = 0; i < index.size(); ++i) CHECK(all.at(static_cast<size_t>(index[i])) == values[i]);
    }
  }
}

TEST_CASE("every fixture loads, with its config in the metadata and every Hydra parameter by name") {
  for (const char* file : {"hydra_tiny.safetensors", "hydra_tiny_distinct.safetensors", "hydra_gqa.safetensors"}) {
    INFO(file);
    std::map<std::string, std::string> meta;
    const auto tensors = load_safetensors(hydra::test::fixture_path(file), &meta);
    const nlohmann::json config = nlohmann::json::parse(meta.at("config"));
    const nlohmann::json& base = config.at("base_config");
    const int64_t d_model = base.at("d_model").get<int64_t>(), vocab = base.at("vocab_size").get<int64_t>();
    CHECK(tensors.at("input_ids").dtype() == DType::Int64);
    CHECK(tensors.at("forward.logits").dtype() == DType::Float64);
    CHECK(tensors.at("forward.logits").shape() ==
          Shape{config.at("n_heads").get<int64_t>(), tensors.at("input_ids").size(0),
                tensors.at("input_ids").size(1), vocab});
    if (std::string(file) == "hydra_tiny.safetensors") {
      // The OLMo state before load_olmo_state: real vocab rows only.
      CHECK(tensors.at("olmo.embeddings.weight").shape() ==
            Shape{std::stoll(meta.at("real_vocab_size")), d_model});
      continue;
    }
    const int64_t trunk = config.at("trunk_layers").get<int64_t>();
    const int64_t heads = config.at("n_heads").get<int64_t>(), depth = config.at("head_layers").get<int64_t>();
    CHECK(tensors.at("trunk.embeddings.weight").shape() == Shape{vocab, d_model});
    CHECK(tensors.at("lm_head.w_out.weight").shape() == Shape{vocab, d_model});
    CHECK(tensors.count("trunk.blocks." + std::to_string(trunk - 1) + ".attention.w_q.weight") == 1);
    CHECK(tensors.count("heads." + std::to_string(heads - 1) + ".blocks." + std::to_string(depth - 1) +
                        ".feed_forward.w2.weight") == 1);
    for (const auto& entry : tensors) {
      const std::string& name = entry.first;
      const Tensor& t = entry.second;
      const bool is_param = name.rfind("trunk.", 0) == 0 || name.rfind("heads.", 0) == 0 ||
                            name.rfind("lm_head.", 0) == 0;
      if (!is_param) continue;
      INFO(name);
      REQUIRE(tensors.count("grad." + name) == 1);
      CHECK(tensors.at("grad." + name).shape() == t.shape());
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Rejections: one byte-literal file per rule, each with its message
// ---------------------------------------------------------------------------------------------------

TEST_CASE("malformed files are rejected with a message naming the file, the tensor and the fault") {
  TempDir dir;
  int counter = 0;
  // Writes the bytes to a file, loads it, and checks the error names the file and says what is wrong.
  auto rejects = [&](const std::string& name, const std::string& bytes, std::vector<std::string> must_contain) {
    const std::string path = dir.file("bad" + std::to_string(counter++) + ".safetensors");
    write_bytes(path, bytes);
    must_contain.push_back(path);
    expect_error(name, [&] { load_safetensors(path); }, must_contain);
  };
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";
  const std::string eight(8, '\x01');

  rejects("empty file", "", {"0 bytes, too short"});
  rejects("truncated header length", std::string("\x05\x00\x00", 3), {"3 bytes, too short"});
  rejects("header length beyond the file", u64_le(1000) + "{}", {"header length 1000 goes beyond the end"});
  rejects("header length over the limit", u64_le(100'000'001) + "{}", {"exceeds the limit of 100000000"});
  rejects("huge header length", u64_le(~uint64_t{0}) + "{}", {"exceeds the limit"});
  rejects("bad JSON", st_bytes("{\"a\": "), {"not valid JSON"});
  rejects("JSON with trailing garbage", st_bytes("{} x"), {"not valid JSON"});
  rejects("invalid UTF-8", st_bytes("{\"\xff\":{}}"), {"not valid JSON"});
  rejects("NUL then anything", st_bytes(std::string("{}\0 xyz", 7)), {"not valid JSON (a NUL byte at offset 2)"});
  rejects("not an object", st_bytes("[1, 2]"), {"must be a JSON object", "array"});
  rejects("entry not an object", st_bytes(R"({"w": 5})"), {"tensor 'w'", "expected an object"});
  rejects("missing dtype", st_bytes(R"({"w":{"shape":[],"data_offsets":[0,0]}})"), {"tensor 'w'", "'dtype'"});
  rejects("unknown dtype", st_bytes(R"({"w":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}})", eight),
          {"tensor 'w'", "unknown dtype 'F33'"});
  rejects("unsupported dtype",
          st_bytes(R"({"lm_head.w_out.weight":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", "abcd"),
          {"unsupported dtype U8 for tensor 'lm_head.w_out.weight'", "expected F32, F64, I32, I64, F16 or BF16"});
  rejects("missing shape", st_bytes(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", eight), {"'w'", "'shape'"});
  rejects("negative shape", st_bytes(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight),
          {"tensor 'w'", "shape must hold non-negative integers, got -2"});
  rejects("fractional shape", st_bytes(R"({"w":{"dtype":"F32","shape":[2.0],"data_offsets":[0,8]}})", eight),
          {"tensor 'w'", "shape must hold non-negative integers"});
  rejects("shape overflow",
          st_bytes(R"({"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", eight),
          {"tensor 'w'", "more bytes than any file can hold"});
  rejects("missing offsets", st_bytes(R"({"w":{"dtype":"F32","shape":[2]}})", eight), {"'w'", "data_offsets"});
  rejects("offsets not a pair", st_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", eight),
          {"'w'", "[begin, end]"});
  rejects("negative offset", st_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", eight),
          {"'w'", "data_offsets must hold non-negative integers"});
  rejects("end before begin", st_bytes(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", eight),
          {"tensor 'w'", "[8, 0] end before they begin"});
  rejects("offsets beyond the file", st_bytes("{\"w\":{" + f32x2 + ",\"data_offsets\":[0,8]}}", "abcd"),
          {"tensor 'w'", "[0, 8] go beyond the end of the data (4 bytes"});
  rejects("a 1 TB tensor in a tiny file",
          st_bytes(R"({"w":{"dtype":"F32","shape":[262144,1048576],"data_offsets":[0,1099511627776]}})", eight),
          {"tensor 'w'", "go beyond the end of the data"});
  rejects("shape and bytes disagree", st_bytes(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight),
          {"tensor 'w'", "[0, 8] hold 8 bytes but shape [3] of F32 needs 12"});
  rejects("overlap",
          st_bytes("{\"a\":{" + f32x2 + ",\"data_offsets\":[0,8]},\"b\":{" + f32x2 + ",\"data_offsets\":[4,12]}}",
                   eight + "abcd"),
          {"tensor 'b'", "[4, 12] overlap tensor 'a' [0, 8]"});
  rejects("same offsets twice",
          st_bytes("{\"a\":{" + f32x2 + ",\"data_offsets\":[0,8]},\"b\":{" + f32x2 + ",\"data_offsets\":[0,8]}}",
                   eight),
          {"overlap tensor"});
  rejects("gap between tensors",
          st_bytes("{\"a\":{" + f32x2 + ",\"data_offsets\":[0,8]},\"b\":{" + f32x2 + ",\"data_offsets\":[12,20]}}",
                   eight + eight + "abcd"),
          {"tensor 'b'", "leave a gap of 4 bytes after offset 8"});
  rejects("gap at the start", st_bytes("{\"a\":{" + f32x2 + ",\"data_offsets\":[4,12]}}", "abcd" + eight),
          {"tensor 'a'", "gap of 4 bytes after offset 0"});
  rejects("trailing bytes", st_bytes("{\"a\":{" + f32x2 + ",\"data_offsets\":[0,8]}}", eight + "xyz"),
          {"cover 8 bytes of data but the file has 11", "3 trailing bytes"});
  rejects("duplicate tensor name",
          st_bytes("{\"a\":{" + f32x2 + ",\"data_offsets\":[0,8]},\"a\":{" + f32x2 + ",\"data_offsets\":[0,8]}}",
                   eight),
          {"names 'a' twice"});
  rejects("metadata not an object", st_bytes(R"({"__metadata__":[1]})"), {"__metadata__ must be an object"});
  rejects("metadata value not a string", st_bytes(R"({"__metadata__":{"n":3}})"),
          {"__metadata__ must map strings to strings, but 'n' is a number"});

  const std::string missing = dir.file("missing.safetensors");
  expect_error("missing file", [&] { load_safetensors(missing); }, {"cannot open safetensors file", missing});
  expect_error("a directory", [&] { load_safetensors(dir.path.string()); }, {"not a regular file"});
}

TEST_CASE("valid corner cases: whitespace around the header, zero-size tensors anywhere, out-of-order entries") {
  TempDir dir;
  const std::string path = dir.file("ok.safetensors");
  // Header entries listed in any order; offsets decide the data order; a zero-size tensor between two.
  write_bytes(path, st_bytes("  \n{\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                             "\"e\":{\"dtype\":\"F64\",\"shape\":[0,3],\"data_offsets\":[8,8]},"
                             "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                             "\"__metadata__\":{}}   ",
                             std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0\x07\x00\x00\x00", 12)));
  const auto t = load_safetensors(path);
  CHECK(t.at("a").to_vector<float>() == std::vector<float>{1.0f, -2.0f});
  CHECK(t.at("b").to_vector<int32_t>() == std::vector<int32_t>{7});
  CHECK(t.at("e").shape() == Shape{0, 3});
  // parse_safetensors_header works on bytes alone (the entry point for fuzzing).
  const std::string bytes = read_bytes(path);
  const SafetensorsHeader h = parse_safetensors_header(bytes, bytes.size(), "memory");
  CHECK(h.tensors.size() == 3);
  CHECK(h.tensors[0].name == "a");
  expect_error("prefix without the header", [&] { parse_safetensors_header(bytes.substr(0, 10), bytes.size(), "mem"); },
               {"mem", "only 10 bytes given"});
}

// ---------------------------------------------------------------------------------------------------
// Memory mapping, alignment, F16 / BF16
// ---------------------------------------------------------------------------------------------------

TEST_CASE("aligned tensors are zero-copy views into the mapping, which lives as long as a view does") {
  TempDir dir;
  const std::string path = dir.file("m.safetensors");
  save_safetensors(path, {{"w", sample({4, 5}, DType::Float32)}, {"i", sample({3}, DType::Int64)}});
  std::shared_ptr<const MappedFile> mapping;
  Tensor w;
  {
    auto tensors = load_safetensors(path, nullptr, &mapping);
    w = tensors.at("w");
    const SafetensorsHeader h = read_safetensors_header(path);
    REQUIRE(mapping != nullptr);
    CHECK(mapping->size() == fs::file_size(path));
    for (const SafetensorsTensorInfo& t : h.tensors) {
      INFO(t.name);
      // The view's first element is exactly the tensor's bytes in the file.
      CHECK(tensors.at(t.name).raw_data() == mapping->data() + h.data_start + t.data_begin);
      CHECK(mapping->contains(tensors.at(t.name).raw_data()));
    }
    CHECK(tensors.at("i").to_vector<int64_t>() == sample({3}, DType::Int64).to_vector<int64_t>());
  }
  const std::string before = read_bytes(path);
  const void* data = w.raw_data();
  mapping.reset();  // only the tensor holds the mapping now
  CHECK(w.raw_data() == data);
  CHECK(w.to_vector<float>() == sample({4, 5}, DType::Float32).to_vector<float>());
  // Writing through a view changes this process's copy only (a private, copy-on-write mapping).
  w.data<float>()[0] = 123.0f;
  CHECK(w.to_vector<float>()[0] == 123.0f);
  CHECK(read_bytes(path) == before);
  CHECK(load_safetensors(path).at("w").to_vector<float>()[0] == sample({4, 5}, DType::Float32).to_vector<float>()[0]);
}

TEST_CASE("a float32 tensor at an unaligned file offset is copied, with the right values") {
  TempDir dir;
  const std::string path = dir.file("odd.safetensors");
  // The header's length is chosen so the data region starts at an offset that is not a multiple of 4.
  const std::string text = R"({"v":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}} )";
  const float values[3] = {1.5f, -2.25f, 3.0e-39f};  // a subnormal too
  std::string data(12, '\0');
  std::memcpy(data.data(), values, 12);
  const std::string bytes = u64_le(text.size()) + text + data;
  REQUIRE((8 + text.size()) % 4 != 0);
  write_bytes(path, bytes);
  std::shared_ptr<const MappedFile> mapping;
  const auto t = load_safetensors(path, nullptr, &mapping);
  CHECK(t.at("v").to_vector<float>() == std::vector<float>{1.5f, -2.25f});
  CHECK(t.at("w").to_vector<float>() == std::vector<float>{3.0e-39f});
  for (const char* name : {"v", "w"}) {
    INFO(name);
    CHECK_FALSE(mapping->contains(t.at(name).raw_data()));
    CHECK(reinterpret_cast<uintptr_t>(t.at(name).raw_data()) % alignof(float) == 0);
  }
}

namespace {

// Reference F16 decoding in double arithmetic, independent of io/half.h's bit manipulation.
double f16_reference(uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  if (exponent == 0) return sign * std::ldexp(mantissa, -24);
  if (exponent == 31) return mantissa == 0 ? sign * INFINITY : NAN;
  return sign * std::ldexp(1024 + mantissa, exponent - 25);
}

std::string u16_le(std::initializer_list<uint16_t> values) {
  std::string s;
  for (uint16_t v : values) s.append(reinterpret_cast<const char*>(&v), 2);
  return s;
}

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }

}  // namespace

TEST_CASE("f16_to_float and bf16_to_float are exact for every one of the 65536 bit patterns") {
  for (uint32_t h = 0; h < 65536; ++h) {
    const uint16_t x = static_cast<uint16_t>(h);
    const float f = f16_to_float(x);
    const double want = f16_reference(x);
    if (std::isnan(want)) {
      CHECK(std::isnan(f));
      CHECK((bits(f) >> 31) == (h >> 15));                   // the sign survives
      CHECK(((bits(f) >> 13) & 0x3ff) == (h & 0x3ff));       // and the payload
    } else if (static_cast<double>(f) != want || std::signbit(f) != std::signbit(want)) {
      FAIL("F16 ", h, ": got ", f, ", want ", want);
    }
    // bfloat16 is the top half of a float32.
    if (bits(bf16_to_float(x)) != (h << 16)) FAIL("BF16 ", h);
  }
}

TEST_CASE("F16 and BF16 tensors load as float32: zeros, subnormals, extremes, infinities, NaN") {
  TempDir dir;
  const std::string path = dir.file("half.safetensors");
  // F16 at data offset 0; BF16 at offset 24 (8-aligned); one F16 value at an odd offset (49) after a U8.
  const std::string header = R"({"h":{"dtype":"F16","shape":[3,4],"data_offsets":[0,24]},)"
                             R"("b":{"dtype":"BF16","shape":[12],"data_offsets":[24,48]},)"
                             R"("pad":{"dtype":"U8","shape":[1],"data_offsets":[48,49]},)"
                             R"("odd":{"dtype":"F16","shape":[1],"data_offsets":[49,51]}})";
  const std::string f16 = u16_le({0x0000, 0x8000, 0x3C00, 0xC000, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0xFC00,
                                  0x7E00, 0x3555});
  const std::string bf16 = u16_le({0x0000, 0x8000, 0x3F80, 0xC000, 0x0001, 0x007F, 0x0080, 0x7F7F, 0x7F80, 0xFF80,
                                   0x7FC0, 0x3EAB});
  write_bytes(path, st_bytes(header, f16 + bf16 + "\x07" + u16_le({0xBC00})));
  // The U8 makes the file unloadable as a whole; check the dtype error first, then load without it.
  expect_error("U8 alongside", [&] { load_safetensors(path); }, {"unsupported dtype U8 for tensor 'pad'"});

  const std::string header2 = R"({"h":{"dtype":"F16","shape":[3,4],"data_offsets":[0,24]},)"
                              R"("b":{"dtype":"BF16","shape":[12],"data_offsets":[24,48]},)"
                              R"("odd":{"dtype":"F16","shape":[1],"data_offsets":[48,50]}})";
  // Pad so the data region starts at an odd file offset: every 2-byte value is unaligned.
  const std::string header2_padded = header2 + std::string((8 + header2.size()) % 2 == 0 ? 1 : 2, ' ');
  REQUIRE((8 + header2_padded.size()) % 2 == 1);
  write_bytes(path, st_bytes(header2_padded, f16 + bf16 + u16_le({0xBC00})));
  const auto t = load_safetensors(path);
  const Tensor& h = t.at("h");
  CHECK(h.dtype() == DType::Float32);
  CHECK(h.shape() == Shape{3, 4});
  const std::vector<float> hv = h.to_vector<float>();
  CHECK(bits(hv[0]) == 0x00000000u);
  CHECK(bits(hv[1]) == 0x80000000u);  // -0
  CHECK(hv[2] == 1.0f);
  CHECK(hv[3] == -2.0f);
  CHECK(hv[4] == std::ldexp(1.0f, -24));          // smallest F16 subnormal
  CHECK(hv[5] == std::ldexp(1023.0f, -24));       // largest F16 subnormal
  CHECK(hv[6] == std::ldexp(1.0f, -14));          // smallest F16 normal
  CHECK(hv[7] == 65504.0f);                       // largest F16
  CHECK(hv[8] == INFINITY);
  CHECK(hv[9] == -INFINITY);
  CHECK(std::isnan(hv[10]));
  CHECK(hv[11] == 0.333251953125f);               // 0x3555: 1365/4096
  const std::vector<float> bv = t.at("b").to_vector<float>();
  CHECK(bits(bv[0]) == 0x00000000u);
  CHECK(bits(bv[1]) == 0x80000000u);
  CHECK(bv[2] == 1.0f);
  CHECK(bv[3] == -2.0f);
  CHECK(bv[4] == std::ldexp(1.0f, -133));         // smallest BF16 subnormal (a float32 subnormal)
  CHECK(bv[5] == std::ldexp(127.0f, -133));       // largest BF16 subnormal
  CHECK(bv[6] == std::ldexp(1.0f, -126));         // smallest normal
  CHECK(bv[7] == 3.3895313892515355e38f);         // largest BF16
  CHECK(bv[8] == INFINITY);
  CHECK(bv[9] == -INFINITY);
  CHECK(std::isnan(bv[10]));
  CHECK(bv[11] == 0.333984375f);                  // 0x3EAB
  CHECK(t.at("odd").to_vector<float>() == std::vector<float>{-1.0f});
}

TEST_CASE("header padding: spaces (and other JSON whitespace) before and after the object are accepted") {
  TempDir dir;
  const std::string path = dir.file("pad.safetensors");
  const std::string entry = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
  for (const std::string& header : {entry + "       ", " \t\r\n" + entry, "  " + entry + " \n "}) {
    write_bytes(path, st_bytes(header, std::string("\x00\x00\x80\x3f", 4)));
    CHECK(load_safetensors(path).at("a").to_vector<float>() == std::vector<float>{1.0f});
  }
  // NUL padding is not whitespace: rejected.
  write_bytes(path, st_bytes(entry + std::string(3, '\0'), std::string("\x00\x00\x80\x3f", 4)));
  expect_error("NUL padding", [&] { load_safetensors(path); }, {path, "not valid JSON"});
}

// ---------------------------------------------------------------------------------------------------
// Sharded checkpoints
// ---------------------------------------------------------------------------------------------------

TEST_CASE("save_sharded_safetensors: one file under the limit, HF-named shards and an index above it") {
  TempDir dir;
  std::map<std::string, Tensor> tensors;
  for (const char* name : {"a", "b", "c", "d", "e"}) tensors[name] = sample({10}, DType::Float32);  // 40 bytes each
  fs::create_directories(dir.path / "one");
  CHECK(save_sharded_safetensors(dir.file("one"), tensors, 200) == std::vector<std::string>{"model.safetensors"});
  CHECK(load_safetensors_checkpoint(dir.file("one")).size() == 5);
  CHECK_FALSE(fs::exists(dir.path / "one" / "model.safetensors.index.json"));

  fs::create_directories(dir.path / "many");
  const auto files = save_sharded_safetensors(dir.file("many"), tensors, 80, {{"format", "pt"}});
  CHECK(files == std::vector<std::string>{"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                                          "model-00003-of-00003.safetensors", "model.safetensors.index.json"});
  const auto index = parse_safetensors_index(read_bytes(dir.file("many/model.safetensors.index.json")), "idx");
  CHECK(index.total_size == std::optional<uint64_t>(200));
  CHECK(index.weight_map == std::map<std::string, std::string>{{"a", "model-00001-of-00003.safetensors"},
                                                               {"b", "model-00001-of-00003.safetensors"},
                                                               {"c", "model-00002-of-00003.safetensors"},
                                                               {"d", "model-00002-of-00003.safetensors"},
                                                               {"e", "model-00003-of-00003.safetensors"}});
  std::map<std::string, std::string> meta;
  CHECK(load_safetensors(dir.file("many/model-00002-of-00003.safetensors"), &meta).size() == 2);
  CHECK(meta.at("format") == "pt");
  const auto back = load_safetensors_checkpoint(dir.file("many"));
  REQUIRE(back.size() == 5);
  for (const auto& [name, t] : tensors) CHECK(same_tensor(back.at(name), t));

  // A tensor larger than the limit gets a shard of its own.
  fs::create_directories(dir.path / "big");
  const auto big = save_sharded_safetensors(dir.file("big"), {{"x", sample({30}, DType::Float32)}, {"y", sample({1}, DType::Float32)}}, 16);
  CHECK(big.size() == 3);
  CHECK(load_safetensors_checkpoint(dir.file("big")).at("x").numel() == 30);
  // Writing is deterministic.
  fs::create_directories(dir.path / "again");
  save_sharded_safetensors(dir.file("again"), tensors, 80, {{"format", "pt"}});
  for (const auto& f : files) CHECK(read_bytes(dir.file("many/" + f)) == read_bytes(dir.file("again/" + f)));

  expect_error("no weights", [&] { load_safetensors_checkpoint(dir.path.string()); },
               {"no weights in", "model.safetensors", "model.safetensors.index.json"});
}

TEST_CASE("parse_safetensors_index rejects malformed indexes, naming the file and the fault") {
  auto rejects = [](const std::string& name, const std::string& text, std::vector<std::string> must_contain) {
    must_contain.push_back("index.json");
    expect_error(name, [&] { parse_safetensors_index(text, "index.json"); }, must_contain);
  };
  rejects("bad JSON", R"({"weight_map": )", {"not valid JSON"});
  rejects("invalid UTF-8", "{\"weight_map\":{\"\xff\":\"a.safetensors\"}}", {"not valid JSON"});
  rejects("not an object", "[]", {"expected a JSON object, got array"});
  rejects("no weight_map", R"({"metadata": {}})", {"missing 'weight_map'"});
  rejects("weight_map not an object", R"({"weight_map": ["a"]})", {"'weight_map' must be an object, got array"});
  rejects("empty weight_map", R"({"weight_map": {}})", {"lists no tensors"});
  rejects("shard not a string", R"({"weight_map": {"w": 3}})", {"tensor 'w'", "must be a file name string, got 3"});
  rejects("shard in a parent directory", R"({"weight_map": {"w": "../x.safetensors"}})",
          {"tensor 'w'", "'../x.safetensors' must be a file name in the index's directory"});
  rejects("absolute shard path", R"({"weight_map": {"w": "/etc/x.safetensors"}})", {"must be a file name"});
  rejects("empty shard name", R"({"weight_map": {"w": ""}})", {"must be a file name"});
  rejects("shard not .safetensors", R"({"weight_map": {"w": "model.bin"}})", {"'model.bin' does not end in .safetensors"});
  rejects("tensor listed twice", R"({"weight_map": {"w": "a.safetensors", "w": "b.safetensors"}})", {"names 'w' twice"});
  rejects("metadata not an object", R"({"metadata": 5, "weight_map": {"w": "a.safetensors"}})",
          {"'metadata' must be an object"});
  rejects("negative total_size", R"({"metadata": {"total_size": -4}, "weight_map": {"w": "a.safetensors"}})",
          {"total_size must be a non-negative integer, got -4"});
  rejects("string total_size", R"({"metadata": {"total_size": "12"}, "weight_map": {"w": "a.safetensors"}})",
          {"total_size must be a non-negative integer"});
  const auto ok = parse_safetensors_index(R"( {"metadata": null, "weight_map": {"w": "a.safetensors"}, "x": 1} )", "i");
  CHECK_FALSE(ok.total_size.has_value());
  CHECK(ok.shards() == std::vector<std::string>{"a.safetensors"});
}

TEST_CASE("load_sharded_safetensors: every shard exists, every tensor is where the index says, and only there") {
  TempDir dir;
  const Tensor v = sample({2}, DType::Float32);
  save_safetensors(dir.file("s1.safetensors"), {{"a", v}, {"b", v}});
  save_safetensors(dir.file("s2.safetensors"), {{"c", v}});
  save_safetensors(dir.file("s3.safetensors"), {{"b", v}});
  const std::string index = dir.file("model.safetensors.index.json");
  auto with_index = [&](const std::string& text) { write_bytes(index, text); };

  with_index(R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors", "c": "s2.safetensors"}})");
  const auto all = load_sharded_safetensors(index);
  CHECK(all.size() == 3);
  CHECK(same_tensor(all.at("c"), v));

  with_index(R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors", "c": "gone.safetensors"}})");
  expect_error("missing shard", [&] { load_sharded_safetensors(index); },
               {index, "shard 'gone.safetensors' (named for tensor 'c') does not exist"});
  with_index(R"({"weight_map": {"a": "s1.safetensors", "b": "s1.safetensors", "c": "s1.safetensors"}})");
  expect_error("tensor not in its shard", [&] { load_sharded_safetensors(index); },
               {index, "tensor 'c' is not in its shard 's1.safetensors'"});
  with_index(R"({"weight_map": {"a": "s1.safetensors", "b": "s3.safetensors", "c": "s2.safetensors"}})");
  expect_error("tensor in two shards", [&] { load_sharded_safetensors(index); },
               {index, "tensor 'b' is in two shards: 's1.safetensors' and 's3.safetensors'"});
  with_index(R"({"weight_map": {"a": "s1.safetensors", "c": "s2.safetensors"}})");
  expect_error("tensor not listed", [&] { load_sharded_safetensors(index); },
               {index, "tensor 'b' is in shard 's1.safetensors' but not in weight_map"});
  with_index(R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors", "c": "s2.safetensors"}})");
  expect_error("tensor in another shard than listed", [&] { load_sharded_safetensors(index); },
               {index, "tensor 'b' is in shard 's1.safetensors' but weight_map puts it in 's2.safetensors'"});
  with_index("{\"weight_map\": ");
  expect_error("bad JSON", [&] { load_sharded_safetensors(index); }, {index, "not valid JSON"});
  write_bytes(dir.file("bad.safetensors"), "garbage!");
  with_index(R"({"weight_map": {"a": "bad.safetensors"}})");
  expect_error("corrupt shard", [&] { load_sharded_safetensors(index); }, {"bad.safetensors", "header length"});
  expect_error("missing index", [&] { load_sharded_safetensors(dir.file("none.json")); },
               {"cannot open safetensors index", "none.json", "No such file"});
}
