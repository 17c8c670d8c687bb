// io/json_file: the one JSON reader every config, index and manifest goes through. Each failure names
// the file and says what is wrong.
#include <doctest/doctest.h>

#include "io/json_file.h"
#include "support/temp_dir.h"
#include "tensor/error.h"

using namespace hydra;
using namespace hydra::io;

TEST_CASE("parse_json_text parses, and names the source of a syntax error") {
  CHECK(parse_json_text(R"({"a": [1, 2.5, "x"]})", "t.json")["a"][1].get<double>() == 2.5);
  CHECK_THROWS_WITH_AS(parse_json_text(R"({"a": )", "m/config.json"),
                       doctest::Contains("m/config.json: not valid JSON"), Error);
  CHECK_THROWS_WITH_AS(parse_json_text("", "empty.json"), doctest::Contains("empty.json: not valid JSON"), Error);
  // Invalid UTF-8 inside a string is a syntax error too (nlohmann checks it), never garbage later.
  CHECK_THROWS_WITH_AS(parse_json_text("{\"a\": \"\xff\"}", "bad.json"), doctest::Contains("bad.json: not valid JSON"),
                       Error);
}

TEST_CASE("read_json_file: missing file, directory, bad JSON, and a good file") {
  test::TempDir dir("io-json");
  CHECK_THROWS_WITH_AS(read_json_file(dir.file("nope.json"), "a model's config"),
                       doctest::Contains(("cannot read '" + dir.file("nope.json") + "' (a model's config)").c_str()), Error);
  CHECK_THROWS_WITH_AS(read_json_file(dir.path.string()), doctest::Contains("it is a directory"), Error);
  const std::string bad = dir.write("bad.json", "{\"n\": 1,}");
  CHECK_THROWS_WITH_AS(read_json_file(bad), doctest::Contains((bad + ": not valid JSON").c_str()), Error);
  const std::string good = dir.write("good.json", "{\"n\": 7}\n");
  CHECK(read_json_file(good)["n"].get<int>() == 7);
  CHECK(read_file_bytes(dir.write("empty", "")).empty());
}
