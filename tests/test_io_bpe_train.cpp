// io/bpe_train: merges worked out by hand (frequency, the tie rule, overlapping pairs, special tokens
// cutting the text, the frequency floor), the incremental trainer against a plain one that recounts
// every pair before every merge, training on prose.txt giving the committed fixture byte for byte, the
// written tokenizer.json loading in io/tokenizer with the learned segmentation, and bad input.
// (That tokenizers.js gives the same ids for the trained file is checked in test_io_tokenizer.cpp.)
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "io/bpe_train.h"
#include "io/regex.h"
#include "io/tokenizer.h"
#include "support/op_harness.h"

using namespace hydra;
using namespace hydra::io;
using hydra::test::check_error_case;

namespace {

std::string fixture_text(const std::string& name) {
  const char* root = std::getenv("HYDRA_SOURCE_DIR");
  REQUIRE_MESSAGE(root != nullptr, "HYDRA_SOURCE_DIR is not set (CTest sets it to the repository root)");
  std::ifstream in(std::string(root) + "/tests/fixtures/tokenizer/" + name, std::ios::binary);
  REQUIRE_MESSAGE(in, "cannot open fixture ", name);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

BpeTrainResult train(const std::vector<std::string>& texts, int64_t vocab_size, int64_t min_frequency = 2) {
  BpeTrainOptions o;
  o.vocab_size = vocab_size;
  o.min_frequency = min_frequency;
  BpeTrainer trainer(o);
  for (const std::string& t : texts) trainer.add_text(t, "text");
  return trainer.train();
}

using Merges = std::vector<std::pair<uint32_t, uint32_t>>;

// The textbook algorithm: before every merge, count every adjacent pair of every piece again.
BpeTrainResult train_by_recounting(const std::vector<std::string>& texts, int64_t vocab_size, int64_t min_frequency) {
  Regex regex(kGpt2PreTokenizerPattern, false);
  MatchScratch scratch;
  Regex::Matcher matcher(regex, scratch);
  std::map<std::string, int64_t> counts;
  for (const std::string& text : texts) {
    MatchBudget budget = MatchBudget::for_text(text.size());
    // Cut at the special token, as the trainer does.
    size_t pos = 0;
    while (pos <= text.size()) {
      const size_t at = text.find("<|endoftext|>", pos);
      const std::string_view stretch = std::string_view(text).substr(pos, at == std::string::npos ? std::string::npos : at - pos);
      split_isolated(matcher, stretch, budget, [&](std::string_view piece) { ++counts[std::string(piece)]; });
      if (at == std::string::npos) break;
      pos = at + 13;
    }
  }
  std::vector<std::pair<std::vector<uint32_t>, int64_t>> words;
  for (const auto& [piece, count] : counts) {
    std::vector<uint32_t> symbols;
    for (unsigned char c : piece) symbols.push_back(c);
    words.push_back({symbols, count});
  }
  BpeTrainResult r;
  for (int b = 0; b < 256; ++b) r.tokens.push_back(std::string(1, static_cast<char>(b)));
  while (static_cast<int64_t>(r.tokens.size()) < vocab_size - 1) {
    std::map<std::pair<uint32_t, uint32_t>, int64_t> pairs;  // ordered: the first of the largest wins ties
    for (const auto& [symbols, count] : words)
      for (size_t i = 0; i + 1 < symbols.size(); ++i) pairs[{symbols[i], symbols[i + 1]}] += count;
    std::pair<uint32_t, uint32_t> best{};
    int64_t best_count = 0;
    for (const auto& [pair, count] : pairs)
      if (count > best_count) {
        best = pair;
        best_count = count;
      }
    if (best_count < min_frequency) break;
    const std::string bytes = r.tokens[best.first] + r.tokens[best.second];
    uint32_t id = static_cast<uint32_t>(std::find(r.tokens.begin(), r.tokens.end(), bytes) - r.tokens.begin());
    if (id == r.tokens.size()) r.tokens.push_back(bytes);
    r.merges.push_back(best);
    for (auto& [symbols, count] : words) {
      std::vector<uint32_t> merged;
      for (size_t i = 0; i < symbols.size();) {
        if (i + 1 < symbols.size() && symbols[i] == best.first && symbols[i + 1] == best.second) {
          merged.push_back(id);
          i += 2;
        } else {
          merged.push_back(symbols[i++]);
        }
      }
      symbols = merged;
    }
  }
  r.first_special = static_cast<uint32_t>(r.tokens.size());
  r.tokens.push_back("<|endoftext|>");
  return r;
}

}  // namespace

TEST_CASE("bpe_train: merges by hand") {
  SUBCASE("the most frequent pair first; ties to the smaller (left, right) ids") {
    // Pieces: "ab", " ab" x2, " cd" x2.
    const BpeTrainResult r = train({"ab ab ab cd cd"}, 300);
    // (a,b)=3 -> 256 "ab"; then (' ',c)=2, (' ',256)=2, (c,d)=2 tie: (32, 99) is the smallest -> 257 " c";
    // then (32, 256) -> 258 " ab"; then (257, 100) -> 259 " cd"; nothing occurs twice any more.
    CHECK(r.merges == Merges{{97, 98}, {32, 99}, {32, 256}, {257, 100}});
    REQUIRE(r.tokens.size() == 261);
    CHECK(r.tokens[256] == "ab");
    CHECK(r.tokens[257] == " c");
    CHECK(r.tokens[258] == " ab");
    CHECK(r.tokens[259] == " cd");
    CHECK(r.tokens[260] == "<|endoftext|>");
    CHECK(r.first_special == 260);
    CHECK(r.pieces == 5);
    CHECK(r.distinct_pieces == 3);
  }
  SUBCASE("overlapping pairs are replaced left to right") {
    const BpeTrainResult r = train({"aaaaa"}, 300, 1);
    // aaaaa -> [aa][aa]a; then (aa, a) beats (aa, aa) on the tie -> [aa][aaa]; then [aaaaa].
    CHECK(r.merges == Merges{{97, 97}, {256, 97}, {256, 257}});
    CHECK(r.tokens[258] == "aaaaa");
  }
  SUBCASE("the vocabulary size stops it, the special token included") {
    const BpeTrainResult r = train({"ab ab ab cd cd"}, 259);
    CHECK(r.merges == Merges{{97, 98}, {32, 99}});
    CHECK(r.tokens.size() == 259);
  }
  SUBCASE("special tokens cut the text and are never merged into") {
    // Without the cut, the special token's bytes would form pairs ("<|" twice...); with it the pieces
    // are "xb" three times.
    const BpeTrainResult r = train({"xb<|endoftext|>xb<|endoftext|>xb"}, 300);
    CHECK(r.merges == Merges{{120, 98}});
    CHECK(r.pieces == 3);
  }
  SUBCASE("pieces follow GPT-2's pre-tokenizer: no pair crosses a piece") {
    // The pieces are "a", " b", " a", " b", " a", " b": (a, ' ') and (b, ' ') never form.
    const BpeTrainResult r = train({"a b a b a b"}, 300);
    CHECK(r.merges == Merges{{32, 98}, {32, 97}});
  }
}

TEST_CASE("bpe_train: the incremental counts give the merges of recounting everything every time") {
  const std::string prose = fixture_text("prose.txt");
  std::mt19937 rng(5);
  // Random text over a small alphabet: many overlapping and repeated pairs, merges of merges.
  std::string noise;
  const std::string alphabet = "aab  bc.\n";
  for (int i = 0; i < 6000; ++i) noise += alphabet[rng() % alphabet.size()];
  struct Case {
    std::string name;
    std::vector<std::string> texts;
    int64_t vocab, min_frequency;
  };
  for (const Case& c : std::vector<Case>{{"prose", {prose}, 600, 2},
                                         {"noise", {noise}, 400, 1},
                                         {"both, with a special token", {prose + "<|endoftext|>" + noise, noise}, 500, 3}}) {
    INFO(c.name);  // a named variable: clang 14 cannot capture structured bindings in INFO's lambda
    const BpeTrainResult fast = train(c.texts, c.vocab, c.min_frequency);
    const BpeTrainResult slow = train_by_recounting(c.texts, c.vocab, c.min_frequency);
    CHECK(fast.merges.size() > 100);
    CHECK(fast.merges == slow.merges);
    CHECK(fast.tokens == slow.tokens);
  }
}

TEST_CASE("bpe_train: prose.txt gives the committed tokenizer.json byte for byte, and it encodes as trained") {
  const std::string prose = fixture_text("prose.txt");
  BpeTrainOptions o;
  o.vocab_size = 512;
  BpeTrainer trainer(o);
  trainer.add_text(prose, "prose.txt");
  const BpeTrainResult r = trainer.train();
  const std::string json = bpe_tokenizer_json(r, o.special_tokens);
  CHECK(json == fixture_text("trained.tokenizer.json"));

  const Tokenizer tok = Tokenizer::from_json(json, "trained");
  CHECK(tok.vocab_size() == 512);
  CHECK(tok.token_id("<|endoftext|>") == 511u);
  // Every learned token is one id when encoded alone as its own piece (merges rebuild it).
  const std::vector<uint32_t> the = tok.encode(" the");
  REQUIRE(the.size() == 1);
  CHECK(tok.decode(the) == " the");
  CHECK(tok.encode("a<|endoftext|>b", true) == std::vector<uint32_t>{97, 511, 98});
  CHECK(tok.decode(tok.encode(prose)) == prose);
  CHECK(tok.encode(prose).size() < prose.size() / 2);  // it compresses the text it was trained on
}

TEST_CASE("bpe_train: bad input") {
  BpeTrainOptions o;
  o.vocab_size = 256;
  check_error_case({"vocab too small", [&] { BpeTrainer t(o); }, {"--vocab-size 256", "need 257"}});
  o.vocab_size = 300;
  o.min_frequency = 0;
  check_error_case({"min frequency", [&] { BpeTrainer t(o); }, {"--min-frequency", "0"}});
  o.min_frequency = 2;
  o.special_tokens = {"<s>", "<s>"};
  check_error_case({"special twice", [&] { BpeTrainer t(o); }, {"'<s>'", "twice"}});
  o.special_tokens = {"<|endoftext|>"};
  BpeTrainer t(o);
  check_error_case({"invalid UTF-8", [&] { t.add_text("good\xC3(", "corpus.txt"); },
                    {"invalid UTF-8 in corpus.txt", "byte offset 4", "0xC3"}});
}
