// The uncertainty head ("judge"): one head trained to say whether another head's answer is right,
// reading that head's hidden state through forward_heads' `residual` — why `residual` exists.
//
// For each prompt/answer row (train/sft_data.h's JSON Lines):
//   pass 1  (answer head A; nothing trains): A's greedy answer to the prompt (up to max_answer_tokens
//           ids, stopping at <|endoftext|>), and A's hidden state at the last prompt position (its last
//           block's output, before the final norm). correct = A's answer equals the row's answer after
//           trimming ASCII whitespace from both.
//   pass 2  (judge head U): the text template(prompt, A's answer), by default
//           "{prompt} Answer: {answer}\nTask: Reply A (correct) or B (wrong): ", through the trunk and head U
//           with a residual that is zero except A's hidden state added at the last position;
//           score = sigmoid(logit(A) − logit(B)) at the last position, A and B being the single token ids
//           of the two judge tokens; loss = (score − correct)², the Brier score, averaged over the rows.
// The trunk and head A are frozen (only U trains, fully or through LoRA), so pass 1 gives the same
// answers and hidden states every epoch: prepare_judge_examples runs it once for the whole file.
//
// Evaluation (evaluate_judge): the Brier score, head A's accuracy, the AUROC of the score for telling
// right from wrong answers (ties count one half), and the expected calibration error over 10
// equal-width bins of the score, with the bins for a reliability diagram (plot_reliability).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hydra/hydra_transformer.h"
#include "io/tokenizer.h"
#include "train/data.h"

namespace hydra::train {

struct JudgeOptions {
  int64_t judge_head = -1;   // U: the head that learns to judge
  int64_t answer_head = -1;  // A: the head whose answers are judged
  int64_t max_answer_tokens = 1;
  std::string judge_template = "{prompt} Answer: {answer}\nTask: Reply A (correct) or B (wrong): ";
  std::string token_a = "A", token_b = "B";  // "right" and "wrong"; each must be one token

  // Error naming the option: heads in [0, n_heads) and different, max_answer_tokens >= 1, the template
  // holds {prompt} and {answer} once each.
  void validate(int64_t n_heads) const;
  // --judge-tokens RIGHT,WRONG into token_a and token_b (error naming the flag unless both are given).
  void parse_tokens(const std::string& text);
  nlohmann::json to_json() const;
};

// One row after pass 1.
struct JudgeExample {
  int64_t line = 0;            // in the JSON Lines file
  std::vector<int64_t> ids;    // pass 2's ids: the template filled with the prompt and A's answer
  std::vector<float> hidden;   // A's hidden state at the last prompt position, (C)
  std::string answer;          // A's greedy answer
  float correct = 0;           // 1 when it matches the row's answer
};

// Pass 1 for every row of `path` (under NoGradGuard). Pass-2 rows longer than `seq` ids are an error
// naming the line. The judge tokens must be single tokens of `tokenizer` (error otherwise).
std::vector<JudgeExample> prepare_judge_examples(HydraTransformer& model, const std::string& path,
                                                 const io::Tokenizer& tokenizer, const JudgeOptions& options,
                                                 int64_t seq);
// The ids of the two judge tokens (error unless each is exactly one token below vocab_size).
std::pair<int64_t, int64_t> judge_token_ids(const io::Tokenizer& tokenizer, const JudgeOptions& options,
                                            int64_t vocab_size);

// Batches of judge examples: inputs right-padded with id 0, residual, last position, label.
class JudgeDataset : public Dataset {
 public:
  JudgeDataset(std::vector<JudgeExample> examples, std::string source, int64_t d_model);
  int64_t size() const override { return static_cast<int64_t>(examples_.size()); }
  Batch make_batch(const std::vector<int64_t>& items) const override;
  std::string describe() const override;
  const std::vector<JudgeExample>& examples() const { return examples_; }

 private:
  std::vector<JudgeExample> examples_;
  std::string source_;
  int64_t d_model_;
};

// The judge head's scores for a batch, (B) in (0, 1): differentiable through head U (and whatever of it
// trains); the trunk runs without a graph (it is frozen under this objective).
Tensor judge_scores(HydraTransformer& model, const Batch& batch, int64_t judge_head, int64_t id_a, int64_t id_b);
// The judge head's score for `answer` to `prompt`, computed as training and evaluation compute it: pass
// 1's hidden state of the answer head at the prompt's last position (the prompt encoded as plain text),
// then pass 2 on the template, as a batch of one row. For an answer made some other way (`hydra generate
// --judge-head`). Checks the options and the judge tokens first; `where` names the source in errors.
double judge_answer(HydraTransformer& model, const io::Tokenizer& tokenizer, const JudgeOptions& options,
                    const std::string& prompt, const std::string& answer, const std::string& where);
// Σ_rows (score − label)² / denominator: a micro-batch's share of the step's mean Brier score.
Tensor brier_share(const Tensor& scores, const Tensor& labels, double denominator);

struct JudgeEval {
  int64_t rows = 0;
  double brier = 0, accuracy = 0, auroc = 0, ece = 0;
  // Reliability bins (10, equal width over [0, 1]): rows, mean score, fraction right.
  std::vector<int64_t> bin_rows;
  std::vector<double> bin_score, bin_accuracy;
  nlohmann::json to_json() const;
};

JudgeEval evaluate_judge(HydraTransformer& model, const JudgeDataset& data, int64_t judge_head, int64_t id_a,
                         int64_t id_b, int64_t batch_size);
// The AUROC of `scores` for labels 1 vs 0 (the probability a right answer scores above a wrong one, ties
// one half); NaN when one class is missing.
double auroc(const std::vector<double>& scores, const std::vector<double>& labels);

// Draws the reliability diagram (mean score vs fraction right per bin, and the diagonal) into `svg`
// with gnuplot. Returns "" on success, else why not (never throws for a missing gnuplot).
std::string plot_reliability(const std::string& svg, const JudgeEval& eval);

}  // namespace hydra::train
