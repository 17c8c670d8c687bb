#include "train/judge.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "autograd/ops.h"
#include "io/utf8.h"
#include "train/run_log.h"
#include "train/sft_data.h"

namespace hydra::train {

namespace {

std::string trim(const std::string& s) {
  const char* ws = " \t\n\v\f\r";  // ASCII whitespace only: the rule does not depend on the locale
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::string fill_template(const std::string& t, const std::string& prompt, const std::string& answer) {
  std::string out = t;
  out.replace(out.find("{prompt}"), 8, prompt);
  out.replace(out.find("{answer}", out.find(prompt) + prompt.size()), 8, answer);
  return out;
}

// The id with the largest logit among the first `vocab` (ties to the lowest id).
int64_t argmax_below(const Tensor& logits, int64_t vocab) {
  const std::vector<float> v = logits.to_vector<float>();
  int64_t best = 0;
  for (int64_t i = 1; i < std::min<int64_t>(vocab, static_cast<int64_t>(v.size())); ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

std::vector<int64_t> encode(const io::Tokenizer& tokenizer, const std::string& text, const std::string& where,
                            int64_t vocab_size) {
  std::vector<uint32_t> ids;
  tokenizer.encode(text, ids, false, where);
  std::vector<int64_t> out(ids.begin(), ids.end());
  for (int64_t id : out)
    HYDRA_CHECK(id < vocab_size, where, ": token id ", id, " is outside the model's vocabulary [0, ", vocab_size,
                ") (is this the model's tokenizer?)");
  return out;
}

// The prompt's ids, as pass 1 reads them (plain text: no special tokens).
std::vector<int64_t> prompt_ids(const io::Tokenizer& tokenizer, const std::string& prompt, const std::string& where,
                                int64_t vocab_size) {
  std::vector<int64_t> ids = encode(tokenizer, prompt, where + " (prompt)", vocab_size);
  HYDRA_CHECK(!ids.empty(), where, ": the prompt is empty");
  return ids;
}

// Pass 1's forward: the answer head's logits (1, 1, 1, V) and hidden state (1, 1, 1, C) at the prompt's
// last position, in one call.
std::pair<Tensor, Tensor> answer_head_at_last(HydraTransformer& model, const std::vector<int64_t>& ids,
                                              int64_t answer_head) {
  const std::vector<int64_t> head{answer_head};
  return model.residual_forward(from_vector(ids, {1, static_cast<int64_t>(ids.size())}), head, head,
                                /*last_token_only=*/true);
}

// Pass 2's ids: the template filled with the prompt and the answer.
std::vector<int64_t> judge_text_ids(const io::Tokenizer& tokenizer, const JudgeOptions& options,
                                    const std::string& prompt, const std::string& answer, const std::string& where,
                                    int64_t vocab_size) {
  return encode(tokenizer, fill_template(options.judge_template, prompt, answer), where + " (judge text)", vocab_size);
}

}  // namespace

void JudgeOptions::validate(int64_t n_heads) const {
  HYDRA_CHECK(judge_head >= 0 && judge_head < n_heads, "--judge-head ", judge_head, " is out of range (the model has ",
              n_heads, " heads)");
  HYDRA_CHECK(answer_head >= 0 && answer_head < n_heads, "--answer-head ", answer_head,
              " is out of range (the model has ", n_heads, " heads)");
  HYDRA_CHECK(judge_head != answer_head, "--judge-head and --answer-head must be different heads (both ", judge_head, ")");
  HYDRA_CHECK(max_answer_tokens >= 1, "--max-answer-tokens must be >= 1, got ", max_answer_tokens);
  auto once = [&](const char* field) {
    const size_t first = judge_template.find(field);
    return first != std::string::npos && judge_template.find(field, first + 1) == std::string::npos;
  };
  HYDRA_CHECK(once("{prompt}") && once("{answer}") && judge_template.find("{prompt}") < judge_template.find("{answer}"),
              "--judge-template must hold {prompt} then {answer}, once each, got '", judge_template, "'");
}

void JudgeOptions::parse_tokens(const std::string& text) {
  const size_t comma = text.find(',');
  HYDRA_CHECK(comma != std::string::npos && comma > 0 && comma + 1 < text.size(),
              "--judge-tokens: expected RIGHT,WRONG (e.g. A,B), got '", text, "'");
  token_a = text.substr(0, comma);
  token_b = text.substr(comma + 1);
}

nlohmann::json JudgeOptions::to_json() const {
  return {{"judge_head", judge_head},   {"answer_head", answer_head}, {"max_answer_tokens", max_answer_tokens},
          {"template", judge_template}, {"token_a", token_a},         {"token_b", token_b}};
}

std::pair<int64_t, int64_t> judge_token_ids(const io::Tokenizer& tokenizer, const JudgeOptions& options,
                                            int64_t vocab_size) {
  auto one = [&](const std::string& text) {
    const std::vector<uint32_t> ids = tokenizer.encode(text);
    HYDRA_CHECK(ids.size() == 1, "--judge-tokens: '", text, "' is ", ids.size(),
                " tokens for this tokenizer; each judge token must be exactly one");
    HYDRA_CHECK(ids[0] < vocab_size, "--judge-tokens: '", text, "' is id ", ids[0], ", outside the model's vocabulary");
    return static_cast<int64_t>(ids[0]);
  };
  const int64_t a = one(options.token_a), b = one(options.token_b);
  HYDRA_CHECK(a != b, "--judge-tokens: both are id ", a);
  return {a, b};
}

std::vector<JudgeExample> prepare_judge_examples(HydraTransformer& model, const std::string& path,
                                                 const io::Tokenizer& tokenizer, const JudgeOptions& options,
                                                 int64_t seq) {
  const int64_t V = model.config().base_config.vocab_size;
  const int64_t vocab = std::min<int64_t>(V, static_cast<int64_t>(tokenizer.vocab_size()));
  const std::optional<uint32_t> eos = tokenizer.token_id("<|endoftext|>");
  judge_token_ids(tokenizer, options, V);  // checked before the work
  NoGradGuard no_grad;
  std::vector<JudgeExample> out;
  const std::vector<int64_t> head{options.answer_head};
  for (const PromptAnswer& row : read_prompt_answer_file(path)) {
    const std::string where = path + ":" + std::to_string(row.line);
    std::vector<int64_t> ids = prompt_ids(tokenizer, row.prompt, where, V);
    JudgeExample ex;
    ex.line = row.line;
    // Pass 1: A's hidden state at the last prompt position and its first answer token.
    auto [logits, hidden] = answer_head_at_last(model, ids, options.answer_head);
    ex.hidden = hidden.to_vector<float>();
    std::vector<uint32_t> answer{static_cast<uint32_t>(argmax_below(logits, vocab))};
    // Further tokens, greedily, until max_answer_tokens or the end-of-text token.
    while (static_cast<int64_t>(answer.size()) < options.max_answer_tokens && !(eos && answer.back() == *eos)) {
      ids.push_back(answer.back());
      Tensor next = model.forward(from_vector(ids, {1, static_cast<int64_t>(ids.size())}), std::nullopt, head, true);
      answer.push_back(static_cast<uint32_t>(argmax_below(next, vocab)));
    }
    if (eos && answer.back() == *eos) answer.pop_back();
    // NOTE: an answer of arbitrary ids need not be valid UTF-8 (a byte-level token can be half a
    // character); it is read as Python's decode(errors="replace") reads it, so it can be tokenized again.
    ex.answer = io::utf8_replace_invalid(tokenizer.decode(answer));
    ex.correct = trim(ex.answer) == trim(row.answer) ? 1.0f : 0.0f;
    // Pass 2's text.
    ex.ids = judge_text_ids(tokenizer, options, row.prompt, ex.answer, where, V);
    HYDRA_CHECK(static_cast<int64_t>(ex.ids.size()) <= seq, where, ": the judge's text is ", ex.ids.size(),
                " tokens, more than --seq ", seq);
    out.push_back(std::move(ex));
  }
  return out;
}

// ---- the dataset ----

JudgeDataset::JudgeDataset(std::vector<JudgeExample> examples, std::string source, int64_t d_model)
    : examples_(std::move(examples)), source_(std::move(source)), d_model_(d_model) {
  HYDRA_CHECK(!examples_.empty(), source_, ": no rows to judge");
}

std::string JudgeDataset::describe() const {
  int64_t right = 0;
  for (const JudgeExample& e : examples_) right += e.correct > 0.5f;
  std::ostringstream os;
  os << source_ << ", " << examples_.size() << " rows, the answer head right on " << right;
  return os.str();
}

Batch JudgeDataset::make_batch(const std::vector<int64_t>& items) const {
  const int64_t B = static_cast<int64_t>(items.size()), C = d_model_;
  int64_t T = 1;
  for (int64_t i : items) T = std::max<int64_t>(T, static_cast<int64_t>(examples_.at(i).ids.size()));
  Batch batch;
  batch.inputs = zeros({B, T}, DType::Int64);
  batch.residual = zeros({B, T, C});
  batch.last = empty({B}, DType::Int64);
  batch.label = empty({B});
  for (int64_t b = 0; b < B; ++b) {
    const JudgeExample& e = examples_[items[b]];
    const int64_t n = static_cast<int64_t>(e.ids.size());
    std::copy(e.ids.begin(), e.ids.end(), batch.inputs.data<int64_t>() + b * T);
    std::copy(e.hidden.begin(), e.hidden.end(), batch.residual.data<float>() + (b * T + n - 1) * C);
    batch.last.data<int64_t>()[b] = n - 1;
    batch.label.data<float>()[b] = e.correct;
  }
  return batch;
}

// ---- scores and loss ----

Tensor judge_scores(HydraTransformer& model, const Batch& batch, int64_t judge_head, int64_t id_a, int64_t id_b) {
  const int64_t B = batch.inputs.size(0), T = batch.inputs.size(1), C = model.config().base_config.d_model;
  Tensor h;
  {
    NoGradGuard no_grad;  // the trunk is frozen under this objective
    h = add(model.forward_trunk(batch.inputs), batch.residual);  // shape: (B, T, C)
  }
  Tensor y = model.heads[judge_head]->forward(h);               // shape: (B, T, C)
  std::vector<int64_t> rows(static_cast<size_t>(B));
  const std::vector<int64_t> last = batch.last.to_vector<int64_t>();
  for (int64_t b = 0; b < B; ++b) rows[b] = b * T + last[b];
  Tensor at_last = index_select(reshape(y, {B * T, C}), 0, from_vector(rows, {B}));  // shape: (B, C)
  Tensor logits = reshape(model.lm_head.forward(unsqueeze(at_last, 1)), {B, -1});  // shape: (B, V)
  Tensor pair = index_select(logits, 1, from_vector<int64_t>({id_a, id_b}, {2}));   // shape: (B, 2)
  return sigmoid(sub(select(pair, 1, 0), select(pair, 1, 1)));                      // shape: (B)
}

double judge_answer(HydraTransformer& model, const io::Tokenizer& tokenizer, const JudgeOptions& options,
                    const std::string& prompt, const std::string& answer, const std::string& where) {
  const int64_t V = model.config().base_config.vocab_size;
  options.validate(model.config().n_heads);
  const auto [id_a, id_b] = judge_token_ids(tokenizer, options, V);
  NoGradGuard no_grad;
  JudgeExample ex;
  ex.hidden = answer_head_at_last(model, prompt_ids(tokenizer, prompt, where, V), options.answer_head)
                  .second.to_vector<float>();
  ex.answer = io::utf8_replace_invalid(answer);  // as pass 1 reads a decoded answer
  ex.ids = judge_text_ids(tokenizer, options, prompt, ex.answer, where, V);
  // A batch of one row through the same code as training and evaluation.
  const JudgeDataset one({std::move(ex)}, where, model.config().base_config.d_model);
  return judge_scores(model, one.make_batch({0}), options.judge_head, id_a, id_b).item<double>();
}

Tensor brier_share(const Tensor& scores, const Tensor& labels, double denominator) {
  Tensor err = sub(scores, labels);
  return mul_scalar(sum(mul(err, err)), 1.0 / denominator);
}

// ---- evaluation ----

double auroc(const std::vector<double>& scores, const std::vector<double>& labels) {
  std::vector<double> pos, neg;
  for (size_t i = 0; i < scores.size(); ++i) (labels[i] > 0.5 ? pos : neg).push_back(scores[i]);
  if (pos.empty() || neg.empty()) return std::numeric_limits<double>::quiet_NaN();
  // Mann-Whitney: ranks over the pooled scores, ties sharing their mean rank.
  std::vector<std::pair<double, int>> all;
  for (double s : pos) all.push_back({s, 1});
  for (double s : neg) all.push_back({s, 0});
  std::sort(all.begin(), all.end());
  double rank_sum = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    while (j < all.size() && all[j].first == all[i].first) ++j;
    const double mean_rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (size_t k = i; k < j; ++k)
      if (all[k].second) rank_sum += mean_rank;
    i = j;
  }
  const double np = static_cast<double>(pos.size()), nn = static_cast<double>(neg.size());
  return (rank_sum - np * (np + 1) / 2) / (np * nn);
}

nlohmann::json JudgeEval::to_json() const {
  nlohmann::json bins = nlohmann::json::array();
  for (size_t i = 0; i < bin_rows.size(); ++i)
    bins.push_back({{"from", i / 10.0}, {"to", (i + 1) / 10.0}, {"rows", bin_rows[i]}, {"mean_score", bin_score[i]},
                    {"fraction_right", bin_accuracy[i]}});
  return {{"rows", rows}, {"brier", brier}, {"answer_head_accuracy", accuracy}, {"auroc", auroc},
          {"ece", ece},   {"bins", bins}};
}

JudgeEval evaluate_judge(HydraTransformer& model, const JudgeDataset& data, int64_t judge_head, int64_t id_a,
                         int64_t id_b, int64_t batch_size) {
  NoGradGuard no_grad;
  std::vector<double> scores, labels;
  for (int64_t start = 0; start < data.size(); start += batch_size) {
    std::vector<int64_t> items;
    for (int64_t i = start; i < std::min(data.size(), start + batch_size); ++i) items.push_back(i);
    const Batch batch = data.make_batch(items);
    for (float s : judge_scores(model, batch, judge_head, id_a, id_b).to_vector<float>()) scores.push_back(s);
    for (float l : batch.label.to_vector<float>()) labels.push_back(l);
  }
  JudgeEval e;
  e.rows = static_cast<int64_t>(scores.size());
  e.bin_rows.assign(10, 0);
  e.bin_score.assign(10, 0.0);
  e.bin_accuracy.assign(10, 0.0);
  for (size_t i = 0; i < scores.size(); ++i) {
    e.brier += (scores[i] - labels[i]) * (scores[i] - labels[i]);
    e.accuracy += labels[i];
    const size_t bin = std::min<size_t>(9, static_cast<size_t>(scores[i] * 10));
    ++e.bin_rows[bin];
    e.bin_score[bin] += scores[i];
    e.bin_accuracy[bin] += labels[i];
  }
  const double n = static_cast<double>(e.rows);
  e.brier /= n;
  e.accuracy /= n;
  for (size_t b = 0; b < 10; ++b) {
    if (e.bin_rows[b] == 0) continue;
    e.bin_score[b] /= static_cast<double>(e.bin_rows[b]);
    e.bin_accuracy[b] /= static_cast<double>(e.bin_rows[b]);
    e.ece += static_cast<double>(e.bin_rows[b]) / n * std::abs(e.bin_accuracy[b] - e.bin_score[b]);
  }
  e.auroc = auroc(scores, labels);
  return e;
}

std::string plot_reliability(const std::string& svg, const JudgeEval& eval) {
  const std::string temp = svg + ".tmp";
  std::ostringstream s;
  s << "set terminal svg size 600,560 dynamic background rgb 'white'\n"
    << "set output " << gnuplot_quoted(temp) << "\n"
    << "set title 'Reliability of the judge head (ECE " << log_number(eval.ece) << ", Brier " << log_number(eval.brier)
    << ")'\nset xlabel 'mean score in bin'\nset ylabel 'fraction of right answers'\n"
    << "set xrange [0:1]\nset yrange [0:1]\nset grid\nset key left top\n$bins << EOD\n";
  for (size_t b = 0; b < eval.bin_rows.size(); ++b)
    if (eval.bin_rows[b] > 0) s << eval.bin_score[b] << " " << eval.bin_accuracy[b] << " " << eval.bin_rows[b] << "\n";
  s << "EOD\nplot x with lines dt 2 title 'perfect calibration', $bins using 1:2 with linespoints pt 7 title "
       "'judge head'\n";
  const std::string why = run_gnuplot(s.str());
  if (!why.empty()) {
    std::remove(temp.c_str());
    return why;
  }
  if (std::rename(temp.c_str(), svg.c_str()) != 0) return "cannot rename " + temp + " to " + svg;
  return "";
}

}  // namespace hydra::train
