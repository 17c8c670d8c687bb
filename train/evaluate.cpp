#include "nn/cross_entropy.h"
#include "train/evaluate.h"

#include <algorithm>
#include <cmath>
#include <span>

#include "autograd/ops.h"
#include "hydra/combine.h"
#include "hydra/loss.h"
#include "train/distributed.h"

namespace hydra::train {

namespace {

// Σ over counted positions of the cross-entropy, in double: the mean times the count.
double cross_entropy_sum(const Tensor& logits, const Tensor& targets, int64_t count) {
  if (count == 0) return 0.0;
  return cross_entropy(logits, targets).item<double>() * static_cast<double>(count);
}

}  // namespace

double EvalResult::mean_head_loss() const {
  double s = 0;
  for (double l : head_loss) s += l;
  return head_loss.empty() ? 0.0 : s / static_cast<double>(head_loss.size());
}

nlohmann::json EvalResult::to_json() const {
  nlohmann::json j;
  j["positions"] = positions;
  j["batches"] = batches;
  nlohmann::json per_head = nlohmann::json::array();
  for (size_t i = 0; i < heads.size(); ++i) {
    nlohmann::json h = {{"head", heads[i]}, {"loss", head_loss[i]}, {"perplexity", std::exp(head_loss[i])}};
    if (has_exact_match) h["exact_match"] = head_exact_match[i];
    per_head.push_back(h);
  }
  j["heads"] = per_head;
  j["mean_head_loss"] = mean_head_loss();
  j["ensemble"] = {{"loss", ensemble_loss}, {"perplexity", std::exp(ensemble_loss)}};
  j["product_of_experts"] = {{"loss", poe_loss}, {"perplexity", std::exp(poe_loss)}};
  j["disagreement"] = disagreement;
  if (has_exact_match) {
    j["rows"] = rows;
    j["ensemble"]["exact_match"] = ensemble_exact_match;
  }
  return j;
}

namespace {

// One batch's sums, as doubles so that every rank's records can be added across ranks exactly (each
// entry is computed by one rank and +0 on the others). Layout: per head its loss sum and matches, then
// the ensemble's loss sum, the product of experts', the disagreeing positions, the ensemble's matches,
// the rows and the counted positions.
struct BatchRecord {
  explicit BatchRecord(std::span<double> v, size_t n_heads) : values(v), n(n_heads) {}
  std::span<double> values;
  size_t n;
  double& head_sum(size_t k) { return values[k]; }
  double& head_matches(size_t k) { return values[n + k]; }
  double& ensemble_sum() { return values[2 * n]; }
  double& poe_sum() { return values[2 * n + 1]; }
  double& disagree() { return values[2 * n + 2]; }
  double& ensemble_matches() { return values[2 * n + 3]; }
  double& rows() { return values[2 * n + 4]; }
  double& positions() { return values[2 * n + 5]; }
  static size_t width(size_t n_heads) { return 2 * n_heads + 6; }
};

void score_batch(HydraTransformer& model, const Batch& batch, const std::vector<int64_t>& heads, BatchRecord r) {
  const int64_t n_heads = static_cast<int64_t>(heads.size());
  const std::vector<double> beta(heads.size(), 1.0);
  const int64_t count = count_targets(batch.targets);
  Tensor logits = model.forward(batch.inputs, std::nullopt, heads);  // shape: (N, B, T, V)
  for (int64_t k = 0; k < n_heads; ++k) r.head_sum(k) = cross_entropy_sum(select(logits, 0, k), batch.targets, count);
  Tensor mean = mean_logits(logits);                                   // shape: (B, T, V)
  r.ensemble_sum() = cross_entropy_sum(mean, batch.targets, count);
  // product_of_experts returns normalised log-probabilities, so their cross-entropy is −log p(target).
  r.poe_sum() = cross_entropy_sum(product_of_experts(logits, beta), batch.targets, count);

  // Argmaxes: per head (N, B, T) and of the ensemble (B, T).
  const std::vector<int64_t> head_arg = argmax(logits, -1).to_vector<int64_t>();
  const std::vector<int64_t> mean_arg = argmax(mean, -1).to_vector<int64_t>();
  const std::vector<int64_t> target = batch.targets.to_vector<int64_t>();
  const int64_t B = batch.targets.size(0), T = batch.targets.size(1), BT = B * T;
  for (int64_t b = 0; b < B; ++b) {
    std::vector<bool> head_ok(heads.size(), true);
    bool ensemble_ok = true, any_counted = false;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t i = b * T + t;
      if (target[i] == kIgnoreIndex) continue;
      any_counted = true;
      bool all_same = true;
      for (int64_t k = 0; k < n_heads; ++k) {
        all_same = all_same && head_arg[k * BT + i] == head_arg[i];
        if (head_arg[k * BT + i] != target[i]) head_ok[k] = false;
      }
      r.disagree() += all_same ? 0 : 1;
      if (mean_arg[i] != target[i]) ensemble_ok = false;
    }
    if (!any_counted) continue;
    r.rows() += 1;
    for (int64_t k = 0; k < n_heads; ++k) r.head_matches(k) += head_ok[k];
    r.ensemble_matches() += ensemble_ok;
  }
  r.positions() = static_cast<double>(count);
}

}  // namespace

EvalResult evaluate(HydraTransformer& model, const Dataset& data, const std::vector<int64_t>& heads,
                    const EvalOptions& options) {
  HYDRA_CHECK(!heads.empty(), "evaluate: no heads to evaluate");
  HYDRA_CHECK(options.batch_size >= 1, "evaluate: batch size must be >= 1");
  NoGradGuard no_grad;
  const size_t n_heads = heads.size();
  int64_t n_batches = (data.size() + options.batch_size - 1) / options.batch_size;
  if (options.max_batches > 0) n_batches = std::min(n_batches, options.max_batches);
  const int rank = options.across_ranks ? dist::rank() : 0, ranks = options.across_ranks ? dist::size() : 1;

  // Every batch's sums (this rank's batches; +0 for the others'), then the same over every rank.
  const size_t width = BatchRecord::width(n_heads);
  std::vector<double> records(static_cast<size_t>(n_batches) * width, 0.0);
  for (int64_t j = rank; j < n_batches; j += ranks) {
    std::vector<int64_t> items;
    const int64_t start = j * options.batch_size;
    for (int64_t i = start; i < std::min(data.size(), start + options.batch_size); ++i) items.push_back(i);
    score_batch(model, data.make_batch(items), heads,
                BatchRecord(std::span<double>(records).subspan(static_cast<size_t>(j) * width, width), n_heads));
  }
  if (ranks > 1) dist::allreduce_in_rank_order(std::span<double>(records));

  // Added in batch order, as one process would.
  std::vector<double> total(width, 0.0);
  for (int64_t j = 0; j < n_batches; ++j)
    for (size_t f = 0; f < width; ++f) total[f] += records[static_cast<size_t>(j) * width + f];
  BatchRecord sum(total, n_heads);
  EvalResult r;
  r.heads = heads;
  r.has_exact_match = options.exact_match;
  r.batches = n_batches;
  r.positions = static_cast<int64_t>(sum.positions());
  r.rows = static_cast<int64_t>(sum.rows());
  HYDRA_CHECK(r.positions > 0, "evaluate: the evaluation data has no counted target position");
  const double n = static_cast<double>(r.positions);
  for (size_t k = 0; k < n_heads; ++k) {
    r.head_loss.push_back(sum.head_sum(k) / n);
    r.head_exact_match.push_back(sum.head_matches(k) / static_cast<double>(r.rows));
  }
  r.ensemble_loss = sum.ensemble_sum() / n;
  r.poe_loss = sum.poe_sum() / n;
  r.disagreement = sum.disagree() / n;
  r.ensemble_exact_match = sum.ensemble_matches() / static_cast<double>(r.rows);
  if (!options.exact_match) r.head_exact_match.clear();
  return r;
}

}  // namespace hydra::train
