#include "train/gradient_buckets.h"

#include <algorithm>
#include <tuple>

#include "autograd/engine.h"
#include "tensor/error.h"

namespace hydra::train {

std::string bucket_key(const std::string& name) {
  const size_t blocks = name.find("blocks.");
  if (blocks != std::string::npos) {
    const size_t end = name.find('.', blocks + 7);
    return name.substr(0, end);
  }
  const size_t last = name.rfind('.');
  return last == std::string::npos ? name : name.substr(0, last);
}

std::vector<int> uses_per_micro_batch(const TrainableParameters& t, int trunk_runs,
                                      const std::map<int64_t, int>& head_runs) {
  int all_head_runs = 0;
  for (const auto& [k, n] : head_runs) all_head_runs += n;
  std::vector<int> uses;
  for (const TrainableParameter& p : t.list()) {
    if (p.name.starts_with("trunk.")) {
      uses.push_back(trunk_runs);
    } else if (p.name.starts_with("heads.")) {
      const auto it = head_runs.find(head_of_parameter(p.name));
      uses.push_back(it == head_runs.end() ? 0 : it->second);
    } else {
      // A new top-level module would need its own count: fail loudly rather than guess.
      HYDRA_ASSERT(p.name.starts_with("lm_head."), "gradient buckets: parameter '", p.name,
                   "' is in neither the trunk, a head nor the lm_head; its uses per micro-batch are unknown");
      uses.push_back(all_head_runs);
    }
  }
  return uses;
}

GradientBuckets::GradientBuckets(TrainableParameters& trainable) : trainable_(trainable) {
  const auto& list = trainable.list();
  std::string key;
  std::vector<std::string> first_names;  // each bucket's first parameter
  for (size_t i = 0; i < list.size(); ++i) {
    const auto [b, e] = trainable.slab_range(i);
    const std::string k = bucket_key(list[i].name);
    if (buckets_.empty() || k != key) {
      buckets_.push_back(Bucket{b, e});
      first_names.push_back(list[i].name);
      key = k;
    } else {
      HYDRA_ASSERT(buckets_.back().end == b, "gradient buckets: parameter '", list[i].name,
                   "' does not follow the previous one in the slab");
      buckets_.back().end = e;
    }
    bucket_of_.push_back(buckets_.size() - 1);
    index_[list[i].param.impl()] = i;
  }
  // The fixed start order: heads (head 0 first, its last block first), then the rest after the heads
  // (the lm_head, its matrix before its norm), then the trunk from its last block to the embedding.
  std::vector<std::tuple<int, int64_t, int64_t, size_t>> keys;  // (part, head, -position, bucket)
  for (size_t b = 0; b < buckets_.size(); ++b) {
    const std::string& first = first_names[b];
    const int part = first.starts_with("heads.") ? 0 : first.starts_with("trunk.") ? 2 : 1;
    keys.emplace_back(part, part == 0 ? head_of_parameter(first) : 0, -buckets_[b].begin, b);
  }
  std::sort(keys.begin(), keys.end());
  for (const auto& key : keys) order_.push_back(std::get<3>(key));
}

GradientBuckets::~GradientBuckets() { set_leaf_grad_observer(nullptr); }

void GradientBuckets::arm(const std::vector<int>& expected, bool fold_stash) {
  HYDRA_ASSERT(expected.size() == bucket_of_.size(), "gradient buckets: ", expected.size(),
               " expected counts for ", bucket_of_.size(), " parameters");
  remaining_ = expected;
  expected_ = expected;
  fold_stash_ = fold_stash;
  started_early_ = 0;
  for (Bucket& b : buckets_) {
    b.pending = 0;
    b.started = false;
  }
  for (size_t i = 0; i < expected.size(); ++i)
    if (expected[i] > 0) ++buckets_[bucket_of_[i]].pending;
  next_ = 0;
  set_leaf_grad_observer([this](const TensorImpl& leaf) { on_contribution(leaf); });
  start_ready();  // buckets that nothing in this micro-batch touches are complete already
}

void GradientBuckets::disarm() { set_leaf_grad_observer(nullptr); }

void GradientBuckets::on_contribution(const TensorImpl& leaf) {
  const auto it = index_.find(&leaf);
  if (it != index_.end()) {
    const size_t i = it->second;
    Bucket& b = buckets_[bucket_of_[i]];
    HYDRA_ASSERT(remaining_[i] > 0 && !b.started, "gradient buckets: parameter '", trainable_.list()[i].name,
                 "' received one more gradient contribution than the ", expected_[i],
                 " its uses in a micro-batch were counted as", b.started ? ", after its bucket was sent" : "",
                 " (the trainer's count of its uses is wrong)");
    if (--remaining_[i] == 0 && --b.pending == 0) start_ready();
  }
  sum_.poll();  // between two kernels of backward: move the buckets in flight along
}

void GradientBuckets::start_ready() {
  for (; next_ < order_.size() && buckets_[order_[next_]].pending == 0; ++next_) {
    start(buckets_[order_[next_]]);
    ++started_early_;
  }
}

void GradientBuckets::start(Bucket& b) {
  if (fold_stash_) trainable_.fold_stash(b.begin, b.end);
  b.started = true;
  std::span<float> slab = trainable_.grad_slab();
  sum_.start(slab.subspan(static_cast<size_t>(b.begin), static_cast<size_t>(b.end - b.begin)));
}

void GradientBuckets::finish() {
  disarm();
  for (; next_ < order_.size(); ++next_) start(buckets_[order_[next_]]);
  sum_.finish();
}

}  // namespace hydra::train
