// The uncertainty head's score of one answer (train::judge_answer, what `hydra generate --judge-head`
// prints): for the answer the answer head generates, it is bit for bit the score training and evaluation
// compute with judge_scores on prepare_judge_examples' row; it reads the answer head's hidden state and
// the answer; bad options are refused with a message naming the flag.
#include <doctest/doctest.h>

#include <optional>

#include <nlohmann/json.hpp>

#include "hydra/generate.h"
#include "io/tokenizer.h"
#include "io/utf8.h"
#include "support/fixtures.h"
#include "support/small_model.h"
#include "support/temp_dir.h"
#include "train/judge.h"

using namespace hydra;
using namespace hydra::train;
using hydra::test::TempDir;

namespace {

// The small model (tests/support/small_model.h) with vocab 320: the tiny tokenizer's 260 ids (letters,
// digits, the judge tokens A and B) and padding; and that tokenizer.
struct Judged {
  std::unique_ptr<HydraTransformer> model = hydra::test::small_hydra_config(320).build("cpu", 11);
  io::Tokenizer tok = io::Tokenizer::load(hydra::test::fixture_path("tokenizer/tiny.tokenizer.json"));
};

JudgeOptions judge_of(int64_t judge_head, int64_t answer_head) {
  JudgeOptions j;
  j.judge_head = judge_head;
  j.answer_head = answer_head;
  return j;
}

const std::vector<std::string> kPrompts = {"x1+2=", "y13+6=", "abc ab", "7"};

// Head A's greedy answer to `prompt` as `hydra generate --combine head:A --temperature 0
// --stop-at-eos --max-new-tokens n` makes it (KV-cached decoding), as text.
std::string generated_answer(HydraTransformer& model, const io::Tokenizer& tok, const std::string& prompt,
                             int64_t answer_head, int64_t n) {
  GenerateOptions g;
  g.mode = GenerateMode::Head;
  g.head = answer_head;
  g.temperature = 0;
  g.max_new_tokens = n;
  g.vocab_limit = static_cast<int64_t>(tok.vocab_size());
  g.stop_id = *tok.token_id("<|endoftext|>");
  std::vector<int64_t> ids;
  for (uint32_t id : tok.encode(prompt)) ids.push_back(id);
  std::vector<uint32_t> answer;
  for (int64_t id : generate(model, ids, g).ids)
    if (id != *g.stop_id) answer.push_back(static_cast<uint32_t>(id));
  return tok.decode(answer);
}

}  // namespace

TEST_CASE("judge_answer on the generated answer = judge_scores on training's row, bit for bit") {
  TempDir dir("judge-answer");
  Judged w;
  HydraTransformer& model = *w.model;
  const io::Tokenizer& tok = w.tok;
  std::string rows;
  for (const std::string& p : kPrompts) rows += nlohmann::json({{"prompt", p}, {"answer", "?"}}).dump() + "\n";
  const std::string file = dir.write("rows.jsonl", rows);
  for (int64_t n : {1, 3}) {
    JudgeOptions j = judge_of(2, 0);
    j.max_answer_tokens = n;
    const auto [id_a, id_b] = judge_token_ids(tok, j, 320);
    const std::vector<JudgeExample> ex = prepare_judge_examples(model, file, tok, j, 64);
    const JudgeDataset data(ex, file, 32);
    for (size_t i = 0; i < kPrompts.size(); ++i) {
      CAPTURE(n);
      CAPTURE(kPrompts[i]);
      const std::string answer = generated_answer(model, tok, kPrompts[i], 0, n);
      // generate's answer is pass 1's answer (so the judge sees what it was trained on) ...
      CHECK(io::utf8_replace_invalid(answer) == ex[i].answer);
      // ... and its score is training's and evaluation's, to the bit.
      const double got = judge_answer(model, tok, j, kPrompts[i], answer, "test");
      const double want = judge_scores(model, data.make_batch({static_cast<int64_t>(i)}), 2, id_a, id_b).item<double>();
      CHECK(got == want);
      CHECK(got > 0);
      CHECK(got < 1);
    }
  }
}

TEST_CASE("judge_answer reads the answer head's hidden state and the answer") {
  Judged w;
  HydraTransformer& model = *w.model;
  const io::Tokenizer& tok = w.tok;
  JudgeOptions j = judge_of(2, 0);
  const double base = judge_answer(model, tok, j, "x1+2=", "3", "test");
  // The same text with head 1's hidden state at the prompt's last position: another residual.
  JudgeOptions other = j;
  other.answer_head = 1;
  CHECK(judge_answer(model, tok, other, "x1+2=", "3", "test") != base);
  // Another answer: another judge text.
  CHECK(judge_answer(model, tok, j, "x1+2=", "4", "test") != base);
  // The tokens swapped: the score is sigmoid(logit(A) - logit(B)), so it becomes 1 - score.
  JudgeOptions swapped = j;
  swapped.parse_tokens("B,A");
  CHECK(judge_answer(model, tok, swapped, "x1+2=", "3", "test") == doctest::Approx(1 - base).epsilon(1e-6));
}

TEST_CASE("judge_answer and JudgeOptions::parse_tokens refuse bad options, naming the flag") {
  Judged w;
  HydraTransformer& model = *w.model;
  const io::Tokenizer& tok = w.tok;
  JudgeOptions j = judge_of(3, 0);
  CHECK_THROWS_WITH_AS(judge_answer(model, tok, j, "x", "1", "test"),
                       "--judge-head 3 is out of range (the model has 3 heads)", Error);
  j.judge_head = 0;
  CHECK_THROWS_WITH_AS(judge_answer(model, tok, j, "x", "1", "test"),
                       "--judge-head and --answer-head must be different heads (both 0)", Error);
  j.judge_head = 2;
  j.token_a = "ab c";
  CHECK_THROWS_WITH_AS(judge_answer(model, tok, j, "x", "1", "test"), doctest::Contains("each judge token must be exactly one"), Error);
  j.token_a = "A";
  CHECK_THROWS_WITH_AS(judge_answer(model, tok, j, "", "1", "test"), "test: the prompt is empty", Error);
  for (const char* bad : {"A", "A,", ",B", ""})
    CHECK_THROWS_WITH_AS(j.parse_tokens(bad), doctest::Contains("--judge-tokens: expected RIGHT,WRONG (e.g. A,B)"), Error);
  j.parse_tokens("yes,no");
  CHECK(j.token_a == "yes");
  CHECK(j.token_b == "no");
}
