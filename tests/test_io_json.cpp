// io/json_file: the one JSON reader every config, index, manifest and tokenizer goes through. Each
// failure names the file and says what is wrong; hostile but legal JSON (deep nesting, many small
// objects, huge values quoted in messages) costs bounded time and stack.
#include <doctest/doctest.h>

#include <time.h>

#include <string>

#include "io/json_file.h"
#include "support/temp_dir.h"
#include "tensor/error.h"

using namespace hydra;
using namespace hydra::io;

TEST_CASE("parse_json_text parses, and names the source of a syntax error") {
  CHECK(parse_json_text(R"({"a": [1, 2.5, "x"]})", "t.json")["a"][1].get<double>() == 2.5);
  CHECK(parse_json_text(R"([{"a": {"b": []}}, 3, {}])", "t.json")[0]["a"]["b"].is_array());
  CHECK(parse_json_text("  7 ", "t.json").get<int>() == 7);
  CHECK_THROWS_WITH_AS(parse_json_text(R"({"a": )", "m/config.json"),
                       doctest::Contains("m/config.json: not valid JSON"), Error);
  CHECK_THROWS_WITH_AS(parse_json_text("", "empty.json"), doctest::Contains("empty.json: not valid JSON"), Error);
  CHECK_THROWS_WITH_AS(parse_json_text("{} {}", "two.json"), doctest::Contains("two.json: not valid JSON"), Error);
  // Invalid UTF-8 inside a string is a syntax error too (nlohmann checks it), never garbage later.
  CHECK_THROWS_WITH_AS(parse_json_text("{\"a\": \"\xff\"}", "bad.json"), doctest::Contains("bad.json: not valid JSON"),
                       Error);
  // The parser's message quotes the last token read; a 1 MB string is not quoted whole.
  std::string message;
  try {
    parse_json_text("[\"" + std::string(1 << 20, 'x') + "\\q\"]", "long.json");
  } catch (const Error& e) {
    message = e.what();
  }
  CHECK(message.starts_with("long.json: not valid JSON ("));
  CHECK(message.size() < 400);
  CHECK_THROWS_WITH_AS(parse_json_text(std::string("{}\0{", 4), "nul.json"),
                       doctest::Contains("nul.json: not valid JSON (a NUL byte at offset 2)"), Error);
}

TEST_CASE("parse_json_text: a key named twice is an error at any depth") {
  CHECK_THROWS_WITH_AS(parse_json_text(R"({"a": 1, "a": 2})", "d.json"), doctest::Contains("d.json: names 'a' twice"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_json_text(R"([{"x": {"k": 1, "j": 2, "k": 3}}])", "d.json"),
                       doctest::Contains("names 'k' twice"), Error);
  // The same key in sibling objects is fine.
  CHECK(parse_json_text(R"([{"k": 1}, {"k": 2}, {"o": {"k": 3}}])", "d.json")[2]["o"]["k"] == 3);
}

TEST_CASE("parse_json_text: nesting is bounded (64 levels), and 100,000 levels is an error, not a crash") {
  auto nested = [](int depth, char open, char close) { return std::string(depth, open) + std::string(depth, close); };
  CHECK(parse_json_text(nested(kMaxJsonDepth, '[', ']'), "ok.json").is_array());
  CHECK_THROWS_WITH_AS(parse_json_text(nested(kMaxJsonDepth + 1, '[', ']'), "deep.json"),
                       doctest::Contains("deep.json: JSON nested deeper than 64 levels"), Error);
  CHECK_THROWS_WITH_AS(parse_json_text(nested(100000, '[', ']'), "deep.json"),
                       doctest::Contains("nested deeper than 64"), Error);
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
  objects += "1" + std::string(100000, '}');
  CHECK_THROWS_WITH_AS(parse_json_text(objects, "deep.json"), doctest::Contains("nested deeper than 64"), Error);
}

TEST_CASE("parse_json_text: many small objects in one parent parse in linear time") {
  // 400,000 objects (5.6 MB) in one array, and 200,000 keys in one object. A parse that rescans the
  // parent at every object end (nlohmann's callback parser) takes minutes here; linear takes well
  // under a second even under sanitizers.
  std::string many = "[";
  for (int i = 0; i < 400000; ++i) many += i ? ",{\"ab\":1}" : "{\"ab\":1}";
  many += "]";
  std::string keys = "{";
  for (int i = 0; i < 200000; ++i) keys += (i ? ",\"k" : "\"k") + std::to_string(i) + "\":{}";
  keys += "}";
  timespec t0{}, t1{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);  // CPU time: a loaded machine does not stretch it
  CHECK(parse_json_text(many, "many.json").size() == 400000);
  CHECK(parse_json_text(keys, "keys.json").size() == 200000);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
  const double seconds = static_cast<double>(t1.tv_sec - t0.tv_sec) + static_cast<double>(t1.tv_nsec - t0.tv_nsec) * 1e-9;
  CHECK_MESSAGE(seconds < 20, "parsing took ", seconds, " s");
}

TEST_CASE("json_excerpt renders a bounded piece of any value") {
  CHECK(json_excerpt(nlohmann::json(12)) == "12");
  CHECK(json_excerpt(nlohmann::json("abc")) == "\"abc\"");
  CHECK(json_excerpt(nlohmann::json::parse(R"({"factor": 2.0})")) == "{\"factor\": 2.0}");
  CHECK(json_excerpt(nlohmann::json::parse("[1, [2, []]]")) == "[1, [2, []]]");
  const std::string long_text = json_excerpt(nlohmann::json(std::string(1 << 20, 'x')));
  CHECK(long_text.size() < 80);
  CHECK(long_text.ends_with("...\""));
  nlohmann::json big = nlohmann::json::array();
  for (int i = 0; i < 100000; ++i) big.push_back(i);
  const std::string big_text = json_excerpt(big);
  CHECK(big_text.size() < 90);
  CHECK(big_text.ends_with(", ...]"));
  // A value nested as deep as the parser allows is rendered without deep recursion.
  const nlohmann::json deep = parse_json_text(std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']'), "x");
  CHECK(json_excerpt(deep) == "[[[[[[[[[...]]]]]]]]]");
}

TEST_CASE("read_json_file: missing file, directory, too large, bad JSON, and a good file") {
  test::TempDir dir("io-json");
  CHECK_THROWS_WITH_AS(read_json_file(dir.file("nope.json"), "model config", 100),
                       doctest::Contains(("cannot open model config " + dir.file("nope.json")).c_str()), Error);
  CHECK_THROWS_WITH_AS(read_json_file(dir.path.string(), "model config", 100), doctest::Contains("it is a directory"),
                       Error);
  const std::string bad = dir.write("bad.json", "{\"n\": 1,}");
  CHECK_THROWS_WITH_AS(read_json_file(bad, "model config", 100), doctest::Contains((bad + ": not valid JSON").c_str()),
                       Error);
  const std::string good = dir.write("good.json", "{\"n\": 7}\n");
  CHECK(read_json_file(good, "model config", 100)["n"].get<int>() == 7);
  CHECK_THROWS_WITH_AS(read_json_file(good, "model config", 8),
                       doctest::Contains("it is 9 bytes, more than the limit of 8 bytes for a model config"), Error);
}
