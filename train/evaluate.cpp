#include "nn/cross_entropy.h"
#include "train/evaluate.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "hydra/combine.h"
#include "hydra/loss.h"

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

EvalResult evaluate(HydraTransformer& model, const Dataset& data, const std::vector<int64_t>& heads,
                    const EvalOptions& options) {
  HYDRA_CHECK(!heads.empty(), "evaluate: no heads to evaluate");
  HYDRA_CHECK(options.batch_size >= 1, "evaluate: batch size must be >= 1");
  NoGradGuard no_grad;
  const int64_t n_heads = static_cast<int64_t>(heads.size());
  EvalResult r;
  r.heads = heads;
  r.has_exact_match = options.exact_match;
  std::vector<double> head_sum(heads.size(), 0.0), head_matches(heads.size(), 0.0);
  double ensemble_sum = 0, poe_sum = 0, disagree = 0, ensemble_matches = 0;
  const std::vector<double> beta(heads.size(), 1.0);

  for (int64_t start = 0; start < data.size(); start += options.batch_size) {
    if (options.max_batches > 0 && r.batches >= options.max_batches) break;
    std::vector<int64_t> items;
    for (int64_t i = start; i < std::min(data.size(), start + options.batch_size); ++i) items.push_back(i);
    const Batch batch = data.make_batch(items);
    const int64_t count = count_targets(batch.targets);
    Tensor logits = model.forward(batch.inputs, std::nullopt, heads);  // shape: (N, B, T, V)
    for (int64_t k = 0; k < n_heads; ++k) head_sum[k] += cross_entropy_sum(select(logits, 0, k), batch.targets, count);
    Tensor mean = mean_logits(logits);                                   // shape: (B, T, V)
    ensemble_sum += cross_entropy_sum(mean, batch.targets, count);
    // product_of_experts returns normalised log-probabilities, so their cross-entropy is −log p(target).
    poe_sum += cross_entropy_sum(product_of_experts(logits, beta), batch.targets, count);

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
        disagree += all_same ? 0 : 1;
        if (mean_arg[i] != target[i]) ensemble_ok = false;
      }
      if (!any_counted) continue;
      ++r.rows;
      for (int64_t k = 0; k < n_heads; ++k) head_matches[k] += head_ok[k];
      ensemble_matches += ensemble_ok;
    }
    r.positions += count;
    ++r.batches;
  }
  HYDRA_CHECK(r.positions > 0, "evaluate: the evaluation data has no counted target position");
  const double n = static_cast<double>(r.positions);
  for (int64_t k = 0; k < n_heads; ++k) {
    r.head_loss.push_back(head_sum[k] / n);
    r.head_exact_match.push_back(head_matches[k] / static_cast<double>(r.rows));
  }
  r.ensemble_loss = ensemble_sum / n;
  r.poe_loss = poe_sum / n;
  r.disagreement = disagree / n;
  r.ensemble_exact_match = ensemble_matches / static_cast<double>(r.rows);
  if (!options.exact_match) r.head_exact_match.clear();
  return r;
}

}  // namespace hydra::train
