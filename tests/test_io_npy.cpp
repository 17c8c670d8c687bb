// io/npy: round trips of every dtype and shape (0-d and 0-size included), byte-identical output to
// NumPy's own files, the files NumPy wrote (tests/fixtures/npy, by scripts/make_fixtures.py) read back,
// and one byte-literal file per rejection rule, each asserting its message.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "io/npy.h"
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

std::string npy_fixture(const std::string& name) { return hydra::test::fixture_path("npy/" + name); }

// A .npy file from a header dict and data bytes; the length field is written as given.
std::string npy_bytes(const std::string& dict, const std::string& data = "", int version = 1) {
  std::string s = std::string("\x93NUMPY", 6) + static_cast<char>(version) + '\0';
  const uint32_t n = static_cast<uint32_t>(dict.size());
  s.append(reinterpret_cast<const char*>(&n), version == 1 ? 2 : 4);
  return s + dict + data;
}

Tensor sample(const Shape& shape, DType dtype) {
  const int64_t n = shape_numel(shape);
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = is_floating(dtype) ? 0.25 - 0.37 * i : 5 * i - 11;
  return kernels::cast_raw(from_vector(v, shape), dtype);
}

void expect_error(const std::string& name, const std::function<void()>& call,
                  const std::vector<std::string>& must_contain) {
  test::check_error_case({name, call, must_contain});
}

}  // namespace

TEST_CASE("save_npy then load_npy gives back every dtype and shape") {
  TempDir dir;
  const std::vector<Shape> shapes = {{}, {0}, {2, 0}, {1}, {7}, {2, 3, 4}, {1, 1, 1, 5}};
  for (DType dtype : {DType::Float32, DType::Float64, DType::Int32, DType::Int64}) {
    for (const Shape& shape : shapes) {
      INFO(dtype_name(dtype), " ", shape_str(shape));
      const Tensor t = sample(shape, dtype);
      const std::string path = dir.file("t.npy");
      save_npy(path, t);
      const Tensor back = load_npy(path);
      CHECK(back.dtype() == dtype);
      CHECK(back.shape() == shape);
      CHECK(back.to_vector<double>() == t.to_vector<double>());
      // NumPy's layout: the data starts on a multiple of 64 bytes, the header ends in '\n'.
      const std::string bytes = read_bytes(path);
      const uint64_t data_start = bytes.size() - static_cast<uint64_t>(t.numel()) * dtype_size(dtype);
      CHECK(data_start % 64 == 0);
      CHECK(bytes[data_start - 1] == '\n');
    }
  }
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);  // no temp files
}

TEST_CASE("save_npy writes exactly the bytes NumPy writes") {
  TempDir dir;
  struct Case {
    const char* file;
    Tensor t;
  };
  const std::vector<Case> cases = {
      {"f32_2x3.npy", kernels::cast_raw(from_vector(std::vector<double>{-1, -0.5, 0, 0.5, 1, 1.5}, {2, 3}),
                                        DType::Float32)},
      {"f64_scalar.npy", from_vector(std::vector<double>{-2.25}, {})},
      {"i32_0x3.npy", zeros({0, 3}, DType::Int32)},
      {"i64_5.npy", from_vector(std::vector<int64_t>{-2000000000000, -1000000000000, 0, 1000000000000,
                                                     2000000000000},
                                {5})},
  };
  for (const Case& c : cases) {
    INFO(c.file);
    save_npy(dir.file("mine.npy"), c.t);
    CHECK(read_bytes(dir.file("mine.npy")) == read_bytes(npy_fixture(c.file)));
  }
  CHECK(npy_header_dict(DType::Float32, {2, 3}) == "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }");
  CHECK(npy_header_dict(DType::Int64, {5}) == "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }");
  CHECK(npy_header_dict(DType::Float64, {}) == "{'descr': '<f8', 'fortran_order': False, 'shape': (), }");
}

TEST_CASE("files written by NumPy read back with their dtype, shape and values (versions 1.0 and 2.0)") {
  Tensor t = load_npy(npy_fixture("f32_2x3.npy"));
  CHECK(t.dtype() == DType::Float32);
  CHECK(t.shape() == Shape{2, 3});
  CHECK(t.to_vector<float>() == std::vector<float>{-1, -0.5, 0, 0.5, 1, 1.5});

  t = load_npy(npy_fixture("f64_scalar.npy"));
  CHECK(t.dtype() == DType::Float64);
  CHECK(t.shape() == Shape{});
  CHECK(t.item<double>() == -2.25);

  t = load_npy(npy_fixture("i32_0x3.npy"));
  CHECK(t.dtype() == DType::Int32);
  CHECK(t.shape() == Shape{0, 3});

  t = load_npy(npy_fixture("i64_5.npy"));
  CHECK(t.dtype() == DType::Int64);
  CHECK(t.to_vector<int64_t>() ==
        std::vector<int64_t>{-2000000000000, -1000000000000, 0, 1000000000000, 2000000000000});

  const std::string v2 = npy_fixture("f64_3x1x2_v2.npy");
  CHECK(read_bytes(v2)[6] == 2);
  t = load_npy(v2);
  CHECK(t.dtype() == DType::Float64);
  CHECK(t.shape() == Shape{3, 1, 2});
  CHECK(t.to_vector<double>() == std::vector<double>{0.125, 0.25, 0.375, 0.5, 0.625, 0.75});
}

TEST_CASE("a non-contiguous tensor is saved as its row-major values") {
  TempDir dir;
  const Tensor t = transpose(sample({3, 4}, DType::Int64), 0, 1);
  REQUIRE_FALSE(t.is_contiguous());
  save_npy(dir.file("t.npy"), t);
  const Tensor back = load_npy(dir.file("t.npy"));
  CHECK(back.shape() == Shape{4, 3});
  CHECK(back.to_vector<int64_t>() == t.to_vector<int64_t>());
}

TEST_CASE("a header longer than 64 KiB is written as version 2.0 and read back") {
  TempDir dir;
  Shape shape(30000, 1);  // 30000 dims: a header of ~90 KB
  shape[100] = 2;
  const Tensor u = reshape(sample({2}, DType::Float32), shape);
  save_npy(dir.file("big.npy"), u);
  const std::string bytes = read_bytes(dir.file("big.npy"));
  CHECK(bytes[6] == 2);
  const Tensor back = load_npy(dir.file("big.npy"));
  CHECK(back.shape() == shape);
  CHECK(back.to_vector<float>() == u.to_vector<float>());
}

TEST_CASE("malformed or unsupported .npy files are rejected with a message naming the file") {
  TempDir dir;
  int counter = 0;
  auto rejects = [&](const std::string& name, const std::string& bytes, std::vector<std::string> must_contain) {
    const std::string path = dir.file("bad" + std::to_string(counter++) + ".npy");
    write_bytes(path, bytes);
    must_contain.push_back(path);
    expect_error(name, [&] { load_npy(path); }, must_contain);
  };
  const std::string f4_2 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";
  const std::string eight(8, '\x01');

  // Written by NumPy itself.
  expect_error("Fortran order", [&] { load_npy(npy_fixture("bad_fortran.npy")); }, {"bad_fortran.npy", "Fortran"});
  expect_error("big-endian", [&] { load_npy(npy_fixture("bad_big_endian.npy")); },
               {"bad_big_endian.npy", "big-endian dtype '>f4'"});
  expect_error("uint8", [&] { load_npy(npy_fixture("bad_uint8.npy")); },
               {"bad_uint8.npy", "unsupported dtype '|u1'"});

  // Byte literals, one per rule.
  rejects("empty file", "", {"does not start with \\x93NUMPY"});
  rejects("bad magic", "\x93NUMPZ\x01\x00", {"does not start with"});
  rejects("truncated in the version", std::string("\x93NUMPY\x01", 7), {"ends inside the version"});
  rejects("truncated in the length", std::string("\x93NUMPY\x01\x00\x05", 9), {"ends inside the header length"});
  rejects("unknown version", std::string("\x93NUMPY\x04\x00\x00\x00", 10), {"unsupported format version 4.0"});
  rejects("header beyond the file", npy_bytes(f4_2).substr(0, 30), {"goes beyond the end of the file"});
  rejects("data too short", npy_bytes(f4_2, "abcd"), {"shape [2] of '<f4' needs 8 bytes but 4 follow"});
  rejects("data too long", npy_bytes(f4_2, eight + "x"), {"needs 8 bytes but 9 follow"});
  rejects("size overflow",
          npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", eight),
          {"more bytes than any file holds"});
  rejects("not a dict", npy_bytes("['descr']"), {"malformed header", "expected '{'"});
  rejects("missing key", npy_bytes("{'descr': '<f4', 'shape': (2,), }", eight), {"lacks 'fortran_order'"});
  rejects("extra key", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", eight),
          {"unexpected key 'x'"});
  rejects("duplicate key", npy_bytes("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", eight),
          {"duplicate key 'descr'"});
  rejects("negative dim", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", eight),
          {"negative dimension"});
  rejects("bad boolean", npy_bytes("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", eight),
          {"expected True or False"});
  rejects("unterminated string", npy_bytes("{'descr': '<f4, 'fortran_order': False"), {"malformed header"});
  rejects("text after the dict", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } x", eight),
          {"unexpected text after the dict"});
  rejects("structured dtype",
          npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", eight),
          {"structured dtypes are not supported"});
  rejects("unsupported dtype", npy_bytes("{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }", eight),
          {"unsupported dtype '<f2'", "expected '<f4'"});

  const std::string missing = dir.file("missing.npy");
  expect_error("missing file", [&] { load_npy(missing); }, {"cannot open .npy file", missing});
  expect_error("meta tensor", [&] { save_npy(dir.file("m.npy"), meta({2})); }, {"m.npy", "meta"});
  CHECK_FALSE(fs::exists(dir.file("m.npy")));
}

TEST_CASE("valid variants: double quotes, Python 2 'L' sizes, no trailing comma, version 3.0") {
  TempDir dir;
  const std::string data = std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8);
  for (const auto& variant : std::vector<std::pair<std::string, int>>{
           {"{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2L,)}\n", 1},
           {"{'shape': (1, 2), 'fortran_order': False, 'descr': '<f4'}", 2},
           {"{'descr':'<f4','fortran_order':False,'shape':(2,),}    \n", 3}}) {
    const std::string& dict = variant.first;
    const int version = variant.second;
    INFO(dict);
    write_bytes(dir.file("v.npy"), npy_bytes(dict, data, version));
    const Tensor t = load_npy(dir.file("v.npy"));
    CHECK(t.numel() == 2);
    CHECK(t.to_vector<float>() == std::vector<float>{1.0f, -2.0f});
  }
  // The parser works on bytes alone (the entry point for fuzzing).
  const std::string bytes = npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (), }", std::string(8, '\0'));
  const NpyHeader h = parse_npy_header(bytes, bytes.size(), "memory");
  CHECK(h.dtype == DType::Int64);
  CHECK(h.shape.empty());
  CHECK(h.data_start == bytes.size() - 8);
}

TEST_CASE("uint16 and uint32 ids: written range-checked, read back widened to int32 / int64") {
  TempDir dir;
  const Tensor ids = from_vector(std::vector<int64_t>{0, 1, 65535, 7, 300, 2}, {2, 3});
  save_npy(dir.file("u2.npy"), ids, "<u2");
  std::string bytes = read_bytes(dir.file("u2.npy"));
  CHECK(bytes.substr(10, 60).find("'descr': '<u2'") != std::string::npos);
  CHECK(bytes.size() == 128 + 6 * 2);  // the header padded to 128 bytes, then 2 bytes per id
  CHECK(bytes.substr(128, 6) == std::string("\x00\x00\x01\x00\xff\xff", 6));
  Tensor back = load_npy(dir.file("u2.npy"));
  CHECK(back.dtype() == DType::Int32);
  CHECK(back.shape() == Shape{2, 3});
  CHECK(back.to_vector<int64_t>() == ids.to_vector<int64_t>());

  const Tensor big = from_vector(std::vector<int64_t>{4294967295, 0, 65536}, {3});
  save_npy(dir.file("u4.npy"), kernels::cast_raw(big, DType::Int64), "<u4");
  back = load_npy(dir.file("u4.npy"));
  CHECK(back.dtype() == DType::Int64);
  CHECK(back.to_vector<int64_t>() == std::vector<int64_t>{4294967295, 0, 65536});
  bytes = read_bytes(dir.file("u4.npy"));
  CHECK(bytes.size() == 128 + 3 * 4);

  // An int32 tensor as '<u4' and a 0-size one.
  save_npy(dir.file("i32.npy"), from_vector(std::vector<int32_t>{5, 6}, {2}), "<u4");
  CHECK(load_npy(dir.file("i32.npy")).to_vector<int64_t>() == std::vector<int64_t>{5, 6});
  save_npy(dir.file("empty.npy"), zeros({0}, DType::Int64), "<u2");
  CHECK(load_npy(dir.file("empty.npy")).numel() == 0);
  // The tensor's own descr works through the same overload.
  save_npy(dir.file("own.npy"), ids, "<i8");
  CHECK(read_bytes(dir.file("own.npy")) == [&] {
    save_npy(dir.file("plain.npy"), ids);
    return read_bytes(dir.file("plain.npy"));
  }());

  // The bytes a NumPy '<u2' file holds (version 1.0, written by hand here) read the same way.
  write_bytes(dir.file("hand.npy"),
              npy_bytes("{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }\n", std::string("\x01\x00\x02\x01\xff\xff", 6)));
  CHECK(load_npy(dir.file("hand.npy")).to_vector<int64_t>() == std::vector<int64_t>{1, 258, 65535});
  write_bytes(dir.file("hand4.npy"), npy_bytes("{'descr': '<u4', 'fortran_order': False, 'shape': (1,), }\n",
                                               std::string("\xff\xff\xff\xff", 4), 2));
  CHECK(load_npy(dir.file("hand4.npy")).to_vector<int64_t>() == std::vector<int64_t>{4294967295});
}

TEST_CASE("ids that do not fit '<u2' / '<u4', and other bad requests, write nothing") {
  TempDir dir;
  const std::string out = dir.file("ids.npy");
  expect_error("too large for u2", [&] { save_npy(out, from_vector(std::vector<int64_t>{1, 65536}, {2}), "<u2"); },
               {out, "value 65536 at index 1 does not fit in '<u2' (0 to 65535)"});
  expect_error("negative", [&] { save_npy(out, from_vector(std::vector<int64_t>{-1}, {1}), "<u4"); },
               {"value -1 at index 0 does not fit in '<u4'"});
  expect_error("too large for u4",
               [&] { save_npy(out, from_vector(std::vector<int64_t>{4294967296}, {1}), "<u4"); },
               {"value 4294967296 at index 0"});
  expect_error("float as u2", [&] { save_npy(out, zeros({2}), "<u2"); }, {"needs an int32 or int64 tensor"});
  expect_error("wrong descr", [&] { save_npy(out, zeros({2}), "<f8"); },
               {"cannot write a float32 tensor as '<f8'"});
  CHECK_FALSE(fs::exists(out));
  // Reading: the data size follows the item size of the descr, not of the widened dtype.
  write_bytes(dir.file("short.npy"),
              npy_bytes("{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }\n", std::string(4, '\0')));
  expect_error("u2 data too short", [&] { load_npy(dir.file("short.npy")); },
               {"short.npy", "shape [3] of '<u2' needs 6 bytes but 4 follow"});
  write_bytes(dir.file("be.npy"),
              npy_bytes("{'descr': '>u2', 'fortran_order': False, 'shape': (1,), }\n", std::string(2, '\0')));
  expect_error("big-endian u2", [&] { load_npy(dir.file("be.npy")); }, {"big-endian dtype '>u2'"});
}
