// io/tokenizer: exact ids against independent reference encoders (tests/fixtures/tokenizer, made by
// scripts/make_tokenizer_fixtures.sh from gpt-3-encoder and gpt-tokenizer) for a GPT-2 and a
// cl100k-style tokenizer.json; decode(encode(x)) == x on random valid UTF-8; special tokens only when
// allowed; both merge forms; long inputs; and one small in-memory tokenizer.json per rejection rule,
// each asserting its message; a tokenizer trained by io/bpe_train against tokenizers.js.
#include <doctest/doctest.h>

#include <time.h>
#include <zstd.h>

#include <cstdlib>
#include <ctime>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/byte_level.h"
#include "io/tokenizer.h"
#include "io/utf8.h"
#include "support/fixtures.h"
#include "tensor/error.h"

using namespace hydra;
using namespace hydra::io;
using nlohmann::json;

namespace {

// This thread's CPU time: the time checks below are about the work done, which a loaded machine (CI
// shares its cores) does not stretch the way it stretches the wall clock.
double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

std::string fixture_path(const std::string& name) { return hydra::test::fixture_path("tokenizer/" + name); }

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in, "cannot open ", path);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

std::string zstd_decompress(const std::string& packed) {
  const unsigned long long size = ZSTD_getFrameContentSize(packed.data(), packed.size());
  REQUIRE(size != ZSTD_CONTENTSIZE_ERROR);
  REQUIRE(size != ZSTD_CONTENTSIZE_UNKNOWN);
  std::string out(size, '\0');
  const size_t n = ZSTD_decompress(out.data(), out.size(), packed.data(), packed.size());
  REQUIRE(!ZSTD_isError(n));
  REQUIRE(n == size);
  return out;
}

// The fixture tokenizers are loaded once per test binary (the cl100k one is 7 MB of JSON).
const Tokenizer& fixture_tokenizer(const std::string& name) {
  static std::map<std::string, Tokenizer> loaded;
  auto it = loaded.find(name);
  if (it == loaded.end()) {
    const std::string file = name + ".tokenizer.json";
    it = loaded.emplace(name, Tokenizer::from_json(zstd_decompress(read_bytes(fixture_path(file + ".zst"))), file))
             .first;
  }
  return it->second;
}

const json& expected_ids() {
  static const json expected = json::parse(read_bytes(fixture_path("expected_ids.json")));
  return expected;
}

// Compares every case of one tokenizer; a mismatch names the case and the first differing index.
void check_fixture_cases(const std::string& name, size_t min_cases) {
  const Tokenizer& tok = fixture_tokenizer(name);
  const json& cases = expected_ids().at(name);
  REQUIRE(cases.size() >= min_cases);
  size_t failures = 0;
  for (const json& c : cases) {
    const std::string text = c.at("text");
    const std::vector<uint32_t> want = c.at("ids").get<std::vector<uint32_t>>();
    const std::vector<uint32_t> got = tok.encode(text, c.at("allow_special").get<bool>());
    if (got != want) {
      size_t i = 0;
      while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
      FAIL_CHECK(name, " case '", c.at("name").get<std::string>(), "': ids differ at index ", i, " (got ",
                 i < got.size() ? std::to_string(got[i]) : "end", ", expected ",
                 i < want.size() ? std::to_string(want[i]) : "end", "); ", got.size(), " vs ", want.size(), " ids");
      ++failures;
    }
    CHECK_MESSAGE(tok.decode(want) == text, name, " case '", c.at("name").get<std::string>(), "' does not decode back");
  }
  CHECK(failures == 0);
}

// A random valid UTF-8 string: mostly ASCII, with any other code point (all planes, no surrogates).
std::string random_utf8(std::mt19937& rng, int max_chars) {
  std::uniform_int_distribution<int> length(0, max_chars), kind(0, 9);
  std::uniform_int_distribution<uint32_t> ascii(0, 0x7F), bmp(0x80, 0xFFFF), astral(0x10000, 0x10FFFF);
  std::string s;
  for (int n = length(rng); n > 0; --n) {
    const int k = kind(rng);
    uint32_t cp = k < 6 ? ascii(rng) : k < 9 ? bmp(rng) : astral(rng);
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = ' ';
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return s;
}

// A small valid byte-level BPE tokenizer.json: the 256 bytes (id = byte value), "ab" (256),
// "abc" (257), " ab" (258), merges "a b", "ab c", "Ġ ab" in that order, GPT-2's ByteLevel
// pre-tokenizer, "<|eot|>" (259, special) and "<x>" (260, not special) added.
json tiny_tokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_level_encode(std::string(1, static_cast<char>(b)))] = b;
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  vocab["\xC4\xA0" "ab"] = 258;  // "Ġab"
  auto added = [](int id, const char* content, bool special) {
    return json{{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                {"normalized", false}, {"special", special}};
  };
  return json{
      {"version", "1.0"},
      {"added_tokens", json::array({added(259, "<|eot|>", true), added(260, "<x>", false)})},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"vocab", vocab}, {"merges", json::array({"a b", "ab c", "\xC4\xA0 ab"})}}},
  };
}

Tokenizer load(const json& j) { return Tokenizer::from_json(j.dump(), "tiny.json"); }

void expect_rejected(const json& j, const std::vector<std::string>& must_contain) {
  const std::string text = j.dump();
  std::string message;
  try {
    Tokenizer::from_json(text, "tiny.json");
  } catch (const Error& e) {
    message = e.what();
  }
  REQUIRE_MESSAGE(!message.empty(), "accepted: ", text.substr(0, 300));
  CHECK_MESSAGE(message.find("tiny.json") != std::string::npos, message);
  for (const std::string& part : must_contain) CHECK_MESSAGE(message.find(part) != std::string::npos, message, " lacks ", part);
}

}  // namespace

TEST_CASE("GPT-2 tokenizer.json gives exactly gpt-3-encoder's and gpt-tokenizer's ids") {
  check_fixture_cases("gpt2", 400);
}

TEST_CASE("cl100k-style tokenizer.json gives exactly gpt-tokenizer's cl100k_base ids") {
  check_fixture_cases("cl100k", 400);
}

TEST_CASE("fixture coverage: the named kinds of text are all there") {
  for (const char* name : {"gpt2", "cl100k"}) {
    std::string names;
    for (const json& c : expected_ids().at(name)) names += c.at("name").get<std::string>() + "\n";
    for (const char* kind : {"spaces:", "digits:", "contractions: upper", "crlf:", "non-ascii:", "emoji:", "prose",
                             "random 299", "TestPlans 60", "(allowed)", "(as text)"})
      CHECK_MESSAGE(names.find(kind) != std::string::npos, name, " lacks ", kind);
  }
  // The prose case is a few KB.
  for (const json& c : expected_ids().at("gpt2"))
    if (c.at("name") == "prose") CHECK(c.at("text").get<std::string>().size() > 4000);
}

TEST_CASE("decode(encode(x)) == x for random valid UTF-8, special tokens allowed or not") {
  std::mt19937 rng(7);
  for (const char* name : {"gpt2", "cl100k"}) {
    const Tokenizer& tok = fixture_tokenizer(name);
    for (int i = 0; i < 300; ++i) {
      std::string text = random_utf8(rng, 60);
      if (i % 10 == 0) text += "<|endoftext|>" + random_utf8(rng, 5);
      INFO(name, " string ", i);
      CHECK(tok.decode(tok.encode(text, false)) == text);
      CHECK(tok.decode(tok.encode(text, true)) == text);
    }
  }
}

TEST_CASE("special tokens are encoded only when allowed") {
  const Tokenizer& gpt2 = fixture_tokenizer("gpt2");
  CHECK(gpt2.encode("<|endoftext|>", true) == std::vector<uint32_t>{50256});
  const std::vector<uint32_t> as_text = gpt2.encode("<|endoftext|>", false);
  CHECK(as_text.size() > 1);
  CHECK(std::find(as_text.begin(), as_text.end(), 50256u) == as_text.end());
  const Tokenizer& cl100k = fixture_tokenizer("cl100k");
  CHECK(cl100k.encode("a<|im_start|>b", true) == std::vector<uint32_t>{64, 100264, 65});
  CHECK(cl100k.token_id("<|endoftext|>") == 100257u);
  CHECK(cl100k.vocab_size() == 100277);
  CHECK(gpt2.vocab_size() == 50257);
  // A non-special added token is always matched.
  const Tokenizer tiny = load(tiny_tokenizer());
  CHECK(tiny.encode("a<x>b", false) == std::vector<uint32_t>{'a', 260, 'b'});
  CHECK(tiny.encode("a<|eot|>", false) != std::vector<uint32_t>{'a', 259});
  CHECK(tiny.encode("a<|eot|>", true) == std::vector<uint32_t>{'a', 259});
}

TEST_CASE("BPE merges by rank, leftmost first; both merge forms give the same tokenizer") {
  json j = tiny_tokenizer();
  const Tokenizer strings = load(j);
  j["model"]["merges"] = json::array({json::array({"a", "b"}), json::array({"ab", "c"}), json::array({"\xC4\xA0", "ab"})});
  const Tokenizer pairs = load(j);
  for (const Tokenizer* tok : {&strings, &pairs}) {
    CHECK(tok->encode("abc") == std::vector<uint32_t>{257});
    CHECK(tok->encode("ababc") == std::vector<uint32_t>{256, 257});        // one pre-token: a b a b c
    CHECK(tok->encode("abab ab") == std::vector<uint32_t>{256, 256, 258});  // " ab" is a pre-token of its own
    CHECK(tok->encode("cab") == std::vector<uint32_t>{'c', 256});
    CHECK(tok->decode(tok->encode("x abc ab")) == "x abc ab");
  }
  // Ranks, not lengths, decide: with "b c" (id 261) ranked before "a b", "abc" becomes a + bc.
  j["model"]["vocab"]["bc"] = 261;
  j["model"]["merges"] = json::array({"b c", "a b", "ab c"});
  CHECK(load(j).encode("abc") == std::vector<uint32_t>{'a', 261});
  // ignore_merges: a pre-token that is a vocab token is taken whole, merges or not.
  j["model"]["vocab"]["xyz"] = 262;
  CHECK(load(j).encode("xyz") == std::vector<uint32_t>{'x', 'y', 'z'});
  j["model"]["ignore_merges"] = true;
  CHECK(load(j).encode("xyz") == std::vector<uint32_t>{262});
}

TEST_CASE("Split pre-tokenizer: Isolated regex and literal patterns, then ByteLevel") {
  json j = tiny_tokenizer();
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers",
                         json::array({{{"type", "Split"}, {"pattern", {{"Regex", "\\p{N}"}}}, {"behavior", "Isolated"},
                                       {"invert", false}},
                                      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
  // No regex split except digits: "ab ab" stays one pre-token, so " ab" is not formed as a word start.
  CHECK(load(j).encode("ab1abc") == std::vector<uint32_t>{256, '1', 257});
  CHECK(load(j).encode("ab ab") == std::vector<uint32_t>{256, 258});
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"String", "b"}};
  CHECK(load(j).encode("abc") == std::vector<uint32_t>{'a', 'b', 'c'});
}

TEST_CASE("long inputs: a megabyte of spaces and a 100 KB word encode quickly and round trip") {
  // NOTE: the budget is CPU time, so other processes on the machine do not count, and it is checked in
  // optimised, uninstrumented builds only (Release: under a second per tokenizer). Under ASan+UBSan with
  // libFuzzer's coverage the same work takes about six times longer, which measures the instrumentation.
  // A quadratic pass over the megabyte would take minutes.
#ifdef HYDRA_SANITIZE
  constexpr bool timed = false;
#else
  constexpr bool timed = true;
#endif
  for (const char* name : {"gpt2", "cl100k"}) {
    const Tokenizer& tok = fixture_tokenizer(name);
    const double start = cpu_seconds();
    const std::string spaces = std::string(1 << 20, ' ') + "x";
    CHECK(tok.decode(tok.encode(spaces)) == spaces);
    std::mt19937 rng(3);
    std::string word;
    for (int i = 0; i < 100000; ++i) word += static_cast<char>('a' + rng() % 26);
    CHECK(tok.decode(tok.encode(word)) == word);
    const std::string newlines = std::string(100000, '\n') + "\r\n\r\n" + std::string(100000, '\t');
    CHECK(tok.decode(tok.encode(newlines)) == newlines);
    if (timed) CHECK(cpu_seconds() - start < 5.0);
  }
}

TEST_CASE("invalid UTF-8 is rejected with the source and the byte offset") {
  const Tokenizer tiny = load(tiny_tokenizer());
  std::vector<uint32_t> out;
  CHECK_THROWS_WITH_AS(tiny.encode(std::string("ok \xC3( bad"), out, false, "input.txt"),
                       doctest::Contains("invalid UTF-8 in input.txt at byte offset 3 (byte 0xC3)"), Error);
  CHECK(utf8_invalid_offset("plain") == std::string_view::npos);
  CHECK(utf8_invalid_offset("\xE2\x82\xAC \xF0\x9F\x98\x80") == std::string_view::npos);  // euro sign, emoji
  CHECK(utf8_invalid_offset("ab\x80") == 2);              // lone continuation byte
  CHECK(utf8_invalid_offset("\xC0\xAF") == 0);            // overlong '/'
  CHECK(utf8_invalid_offset("x\xED\xA0\x80") == 1);       // surrogate U+D800
  CHECK(utf8_invalid_offset("\xF4\x90\x80\x80") == 0);    // above U+10FFFF
  CHECK(utf8_invalid_offset("ab\xE2\x82") == 2);          // truncated
}

TEST_CASE("byte-level alphabet: 256 distinct characters, space is U+0120, round trip") {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  CHECK(byte_level_decode(byte_level_encode(all)) == all);
  CHECK(byte_level_encode(" \n!") == "\xC4\xA0\xC4\x8A!");  // "ĠĊ!"
  CHECK(byte_level_char(0xAD) == 0x143);
  CHECK_FALSE(byte_level_decode("\xC5\x84").has_value());  // U+0144: one past the alphabet
  CHECK_FALSE(byte_level_decode("\xE2\x82\xAC").has_value());
}

TEST_CASE("decode rejects ids outside the vocabulary") {
  const Tokenizer& cl100k = fixture_tokenizer("cl100k");
  CHECK_THROWS_WITH_AS(cl100k.decode(std::vector<uint32_t>{100261}), doctest::Contains("token id 100261"), Error);
  CHECK_THROWS_WITH_AS(cl100k.decode(std::vector<uint32_t>{100277}), doctest::Contains("(100277 ids)"), Error);
}

TEST_CASE("rejections: each malformed tokenizer.json names the file and the problem") {
  CHECK_NOTHROW(load(tiny_tokenizer()));
  expect_rejected(json::array(), {"expected a JSON object at the top level"});
  CHECK_THROWS_WITH_AS(Tokenizer::from_json("{\"model\": ", "tiny.json"), doctest::Contains("tiny.json: not valid JSON"),
                       Error);
  CHECK_THROWS_WITH_AS(Tokenizer::from_json(std::string(100000, '[') + std::string(100000, ']'), "tiny.json"),
                       doctest::Contains("nested deeper than 64"), Error);
  CHECK_THROWS_WITH_AS(Tokenizer::from_json("", "tiny.json"), doctest::Contains("not valid JSON"), Error);
  auto with = [](const std::function<void(json&)>& edit) {
    json j = tiny_tokenizer();
    edit(j);
    return j;
  };
  expect_rejected(with([](json& j) { j.erase("model"); }), {"missing \"model\""});
  expect_rejected(with([](json& j) { j["model"]["type"] = "WordPiece"; }),
                  {"unsupported model type \"WordPiece\"", "only \"BPE\""});
  expect_rejected(with([](json& j) { j["model"].erase("type"); }), {"model lacks \"type\""});
  expect_rejected(with([](json& j) { j["model"]["dropout"] = 0.1; }), {"dropout"});
  expect_rejected(with([](json& j) { j["model"]["byte_fallback"] = true; }), {"byte_fallback"});
  expect_rejected(with([](json& j) { j["model"]["continuing_subword_prefix"] = "##"; }), {"continuing_subword_prefix"});
  expect_rejected(with([](json& j) { j["model"].erase("vocab"); }), {"model lacks \"vocab\""});
  expect_rejected(with([](json& j) { j["model"]["vocab"] = json::array(); }), {"model.vocab must be an object"});
  expect_rejected(with([](json& j) { j["model"]["vocab"]["zz"] = -4; }), {"vocab token 'zz'", "non-negative integer id"});
  expect_rejected(with([](json& j) { j["model"]["vocab"]["zz"] = "7"; }), {"vocab token 'zz'", "non-negative integer id"});
  expect_rejected(with([](json& j) { j["model"]["vocab"]["zz"] = 256; }), {"vocab ids clash", "both have id 256"});
  expect_rejected(with([](json& j) { j["model"]["vocab"]["zz"] = 1000000000; }), {"'zz' has id 1000000000", "far beyond"});
  expect_rejected(with([](json& j) { j["model"]["vocab"]["\xE2\x82\xAC"] = 300; }), {"not spelled in GPT-2's byte-level"});
  expect_rejected(with([](json& j) { j["model"]["vocab"]["\xC4\x8A"] = 300; j["model"]["vocab"].erase("\xC4\x8A"); }),
                  {"lacks the token for byte 10"});
  expect_rejected(with([](json& j) { j["model"]["vocab"][""] = 300; }), {"empty token"});
  expect_rejected(with([](json& j) { j["model"].erase("merges"); }), {"model lacks \"merges\""});
  expect_rejected(with([](json& j) { j["model"]["merges"].push_back("q"); }), {"merge #3", "two tokens separated by one space"});
  expect_rejected(with([](json& j) { j["model"]["merges"].push_back("a b c"); }), {"merge #3", "one space"});
  expect_rejected(with([](json& j) { j["model"]["merges"].push_back(json::array({"a"})); }),
                  {"merge #3 must be \"a b\" or [\"a\", \"b\"]"});
  expect_rejected(with([](json& j) { j["model"]["merges"].push_back("abcd e"); }),
                  {"merge #3", "references 'abcd', which is not in the vocab"});
  expect_rejected(with([](json& j) { j["model"]["merges"].push_back(json::array({"b", "a"})); }),
                  {"merge #3", "the merged token 'ba' is not in the vocab"});
  expect_rejected(with([](json& j) { j["normalizer"] = {{"type", "NFC"}}; }), {"unsupported normalizer", "NFC"});
  expect_rejected(with([](json& j) { j.erase("pre_tokenizer"); }), {"missing \"pre_tokenizer\""});
  expect_rejected(with([](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }),
                  {"unsupported pre-tokenizer 'Whitespace'"});
  expect_rejected(with([](json& j) { j["pre_tokenizer"]["add_prefix_space"] = true; }), {"add_prefix_space"});
  expect_rejected(with([](json& j) {
                    j["pre_tokenizer"] = {{"type", "Sequence"},
                                          {"pretokenizers", json::array({{{"type", "Split"},
                                                                          {"pattern", {{"Regex", "\\s+"}}},
                                                                          {"behavior", "Isolated"}}})}};
                  }),
                  {"no ByteLevel step"});
  json bad_regex = {{"type", "Sequence"},
                    {"pretokenizers",
                     json::array({{{"type", "Split"}, {"pattern", {{"Regex", "(\\p{L}+"}}}, {"behavior", "Isolated"}},
                                  {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}})}};
  expect_rejected(with([&](json& j) { j["pre_tokenizer"] = bad_regex; }),
                  {"pre_tokenizer.pretokenizers[0] has a bad regex '(\\p{L}+'", "missing closing parenthesis"});
  expect_rejected(with([&](json& j) {
                    j["pre_tokenizer"] = bad_regex;
                    j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\p{L}";
                    j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
                  }),
                  {"behavior 'Removed'", "only \"Isolated\""});
  expect_rejected(with([&](json& j) {
                    j["pre_tokenizer"] = bad_regex;
                    std::swap(j["pre_tokenizer"]["pretokenizers"][0], j["pre_tokenizer"]["pretokenizers"][1]);
                  }),
                  {"follows ByteLevel"});
  expect_rejected(with([](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }), {"unsupported decoder"});
  expect_rejected(with([](json& j) { j["added_tokens"][0]["id"] = 'a'; }),
                  {"added token '<|eot|>' has id 97, which the vocab gives to 'a'"});
  expect_rejected(with([](json& j) { j["added_tokens"][1]["id"] = 259; }), {"added token ids clash", "both have id 259"});
  expect_rejected(with([](json& j) { j["added_tokens"][0]["lstrip"] = true; }), {"added_tokens[0]", "lstrip"});
  expect_rejected(with([](json& j) { j["added_tokens"][0]["content"] = ""; }), {"added_tokens[0] has empty content"});
  expect_rejected(with([](json& j) { j["added_tokens"][0].erase("id"); }), {"added_tokens[0] lacks \"id\""});
  expect_rejected(with([](json& j) { j["added_tokens"] = "x"; }), {"\"added_tokens\" must be an array"});
}

TEST_CASE("hostile input: mutated and truncated tokenizer.json load or throw hydra::Error, nothing else") {
  const std::string base = tiny_tokenizer().dump();
  std::mt19937 rng(11);
  const std::string alphabet = "{}[]\":,0123456789-.eE \\ntruefalsnul\xC4\xA0\xFF";
  int loaded = 0, rejected = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string text = base;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % text.size();
      switch (rng() % 4) {
        case 0: text[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: text.erase(at, 1 + rng() % 8); break;
        case 2: text.insert(text.begin() + static_cast<std::ptrdiff_t>(at), alphabet[rng() % alphabet.size()]); break;
        default: text.resize(at); break;
      }
      if (text.empty()) text.push_back('{');
    }
    try {
      const Tokenizer tok = Tokenizer::from_json(text, "fuzz.json");
      const std::string sample = "ab abc <|eot|> x\n";
      CHECK(tok.decode(tok.encode(sample, true)) == sample);
      ++loaded;
    } catch (const Error&) {
      ++rejected;
    }  // any other exception type fails the test case
  }
  CHECK(loaded > 0);
  CHECK(rejected > 0);
}

TEST_CASE("copies encode independently and alike; a second encode (warm cache) gives the same ids") {
  const Tokenizer& original = fixture_tokenizer("cl100k");
  const std::string text = "Copies share no cache: the same words, the same ids. 12345 \r\n";
  const std::vector<uint32_t> first = original.encode(text);
  Tokenizer copy = original;
  CHECK(copy.encode(text) == first);
  CHECK(original.encode(text) == first);
  Tokenizer assigned = fixture_tokenizer("gpt2");
  assigned = copy;
  CHECK(assigned.encode(text) == first);
  const Tokenizer moved = std::move(copy);
  CHECK(moved.encode(text) == first);
}

TEST_CASE("a tokenizer trained by tokenizer-train: tokenizers.js's ids, and decode(encode(x)) == x") {
  // trained.tokenizer.json and the ids HuggingFace's tokenizers.js gives for it come from
  // scripts/make_trained_tokenizer_fixture.sh. tokenizers.js always matches added tokens, so Hydra
  // encodes with special tokens allowed.
  const std::string file = "trained.tokenizer.json";
  const Tokenizer tok = Tokenizer::from_json(read_bytes(fixture_path(file)), file);
  const json fixture = json::parse(read_bytes(fixture_path("trained_ids.json")));
  CHECK(fixture.at("tokenizer") == file);
  const json& cases = fixture.at("cases");
  REQUIRE(cases.size() >= 400);
  size_t failures = 0;
  for (const json& c : cases) {
    const std::string text = c.at("text");
    const std::vector<uint32_t> want = c.at("ids").get<std::vector<uint32_t>>();
    const std::vector<uint32_t> got = tok.encode(text, /*allow_special=*/true);
    if (got != want) {
      FAIL_CHECK("case '", c.at("name").get<std::string>(), "': ", got.size(), " ids, tokenizers.js gives ", want.size());
      ++failures;
    }
    CHECK(tok.decode(got) == text);
  }
  CHECK(failures == 0);
  std::mt19937 rng(11);
  for (int i = 0; i < 300; ++i) {
    std::string text = random_utf8(rng, 80);
    if (i % 10 == 0) text += "<|endoftext|>" + random_utf8(rng, 5);
    INFO("string ", i);
    CHECK(tok.decode(tok.encode(text, false)) == text);
    CHECK(tok.decode(tok.encode(text, true)) == text);
  }
}

namespace {

// The tiny tokenizer with these Split regexes (in order) before its ByteLevel step.
json with_splits(const std::vector<std::string>& patterns) {
  json j = tiny_tokenizer();
  json steps = json::array();
  for (const std::string& p : patterns)
    steps.push_back({{"type", "Split"}, {"pattern", {{"Regex", p}}}, {"behavior", "Isolated"}, {"invert", false}});
  steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}});
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", steps}};
  return j;
}

}  // namespace

TEST_CASE("the regex budget: real patterns use a small fraction of it") {
  // The measurement behind MatchBudget::kStepsPerByte (256): ordinary text stays far below it.
  std::mt19937 rng(5);
  std::string printable;
  for (int i = 0; i < 100000; ++i) printable += static_cast<char>(32 + rng() % 95);
  std::string prose;
  for (const json& c : expected_ids().at("gpt2"))
    if (c.at("name") == "prose") prose = c.at("text").get<std::string>();
  REQUIRE(!prose.empty());
  for (const char* name : {"gpt2", "cl100k"}) {
    const Tokenizer& tok = fixture_tokenizer(name);
    for (const std::string* text : {&prose, &printable}) {
      tok.encode(*text);
      const double per_byte = static_cast<double>(tok.last_match_steps()) / static_cast<double>(text->size());
      INFO(name, ": ", per_byte, " steps per byte");
      CHECK(per_byte > 1);
      CHECK(per_byte < 32);
    }
  }
}

TEST_CASE("catastrophic Split patterns stop with an error, in bounded time") {
  // Nested quantifiers: exponential at every position; stopped by the step budget.
  const Tokenizer nested = load(with_splits({"(a+)+x|a"}));
  CHECK(nested.encode("aaaa") == std::vector<uint32_t>{'a', 'a', 'a', 'a'});  // harmless on short runs
  double start = cpu_seconds();
  CHECK_THROWS_WITH_AS(nested.encode(std::string(200000, 'a')), doctest::Contains("matching steps for 200000 bytes"),
                       Error);
  CHECK(cpu_seconds() - start < 20);
  // Adjacent repeats over one long run: each counted step rescans the run; stopped by the CPU-time limit
  // (1 s + 5 us per byte here) or the steps, whichever comes first.
  const Tokenizer adjacent = load(with_splits({"a*a*a*x|b"}));
  start = cpu_seconds();
  CHECK_THROWS_WITH_AS(adjacent.encode(std::string(30000, 'a')), doctest::Contains("backtracks catastrophically"),
                       Error);
  CHECK(cpu_seconds() - start < 30);
}

TEST_CASE("pre-tokenizer stages are bounded; the stages share one JIT stack") {
  std::vector<std::string> sixteen(kMaxPreTokenizerStages - 1, "\\p{N}");
  const Tokenizer many = load(with_splits(sixteen));
  CHECK(many.encode("ab1abc") == std::vector<uint32_t>{256, '1', 257});
  // 100,000 stages: refused when loaded (it used to crash encoding by recursion).
  json huge = with_splits({});
  json steps = json::array();
  for (int i = 0; i < 100000; ++i)
    steps.push_back({{"type", "Split"}, {"pattern", {{"String", "q"}}}, {"behavior", "Isolated"}});
  huge["pre_tokenizer"]["pretokenizers"] = steps;
  expect_rejected(huge, {"pre_tokenizer has 100000 steps; at most 16 are supported"});
  expect_rejected(with_splits(std::vector<std::string>(kMaxPreTokenizerStages, "x")), {"has 17 steps"});
}

TEST_CASE("60,000 added tokens load and encode in linear time") {
  json j = tiny_tokenizer();
  for (int i = 0; i < 60000; ++i)
    j["added_tokens"].push_back({{"id", 261 + i}, {"content", "<t" + std::to_string(i) + ">"}, {"special", i % 2 == 0}});
  const std::string text = j.dump();
  const double start = cpu_seconds();
  const Tokenizer tok = Tokenizer::from_json(text, "many.json");
  CHECK(tok.vocab_size() == 261 + 60000);
  CHECK(tok.token_id("<t59999>") == 261u + 59999);
  // Leftmost, then longest: "<t1>" is not cut out of "<t12>".
  CHECK(tok.encode("ab<t12>c<t59999>", true) == std::vector<uint32_t>{256, 261 + 12, 'c', 261 + 59999});
  CHECK(tok.encode("<t2>", false) != std::vector<uint32_t>{261 + 2});  // special: text unless allowed
  std::string long_text;
  for (int i = 0; i < 20000; ++i) long_text += "ab <t" + std::to_string(i * 3) + "> ";
  const std::vector<uint32_t> ids = tok.encode(long_text, true);
  CHECK(tok.decode(ids) == long_text);
  CHECK(cpu_seconds() - start < 20);
  // Duplicates are still found (by hash, not by scanning).
  j["added_tokens"].push_back({{"id", 70000}, {"content", "<t123>"}});
  expect_rejected(j, {"added token '<t123>' is listed twice"});
}

TEST_CASE("tokenizer.json: duplicate keys and oversized added tokens are refused") {
  std::string text = tiny_tokenizer().dump();
  text.insert(1, "\"normalizer\": null, ");  // the tiny tokenizer already has a "normalizer" key
  CHECK_THROWS_WITH_AS(Tokenizer::from_json(text, "tiny.json"), doctest::Contains("tiny.json: names 'normalizer' twice"),
                       Error);
  json j = tiny_tokenizer();
  j["added_tokens"][0]["content"] = std::string(kMaxAddedTokenBytes + 1, 'z');
  expect_rejected(j, {"added_tokens[0] has 1025 bytes of content; at most 1024"});
}
