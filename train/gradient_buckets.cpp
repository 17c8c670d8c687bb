#include "train/gradient_buckets.h"

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
      const auto it = head_runs.find(std::stoll(p.name.substr(6, p.name.find('.', 6) - 6)));
      uses.push_back(it == head_runs.end() ? 0 : it->second);
    } else {
      uses.push_back(all_head_runs);
    }
  }
  return uses;
}

GradientBuckets::GradientBuckets(TrainableParameters& trainable) : trainable_(trainable) {
  const auto& list = trainable.list();
  std::string key;
  for (size_t i = 0; i < list.size(); ++i) {
    const auto [b, e] = trainable.slab_range(i);
    const std::string k = bucket_key(list[i].name);
    if (buckets_.empty() || k != key) {
      buckets_.push_back(Bucket{b, e});
      key = k;
    } else {
      HYDRA_ASSERT(buckets_.back().end == b, "gradient buckets: parameter '", list[i].name,
                   "' does not follow the previous one in the slab");
      buckets_.back().end = e;
    }
    bucket_of_.push_back(buckets_.size() - 1);
    index_[list[i].param.impl()] = i;
  }
}

GradientBuckets::~GradientBuckets() { set_leaf_grad_observer(nullptr); }

void GradientBuckets::arm(const std::vector<int>& expected, bool fold_stash) {
  HYDRA_ASSERT(expected.size() == bucket_of_.size(), "gradient buckets: ", expected.size(),
               " expected counts for ", bucket_of_.size(), " parameters");
  remaining_ = expected;
  fold_stash_ = fold_stash;
  started_early_ = 0;
  for (Bucket& b : buckets_) {
    b.pending = 0;
    b.started = false;
  }
  for (size_t i = 0; i < expected.size(); ++i)
    if (expected[i] > 0) ++buckets_[bucket_of_[i]].pending;
  set_leaf_grad_observer([this](const TensorImpl& leaf) { on_contribution(leaf); });
}

void GradientBuckets::on_contribution(const TensorImpl& leaf) {
  const auto it = index_.find(&leaf);
  if (it != index_.end()) {
    const size_t i = it->second;
    Bucket& b = buckets_[bucket_of_[i]];
    HYDRA_ASSERT(remaining_[i] > 0 && !b.started, "gradient buckets: parameter '", trainable_.list()[i].name,
                 "' received a gradient contribution after its bucket was sent (the trainer's count of "
                 "its uses is wrong)");
    if (--remaining_[i] == 0 && --b.pending == 0) {
      start(b);
      ++started_early_;
    }
  }
  sum_.poll();  // between two kernels of backward: move the buckets in flight along
}

void GradientBuckets::start(Bucket& b) {
  if (fold_stash_) trainable_.fold_stash(b.begin, b.end);
  b.started = true;
  std::span<float> slab = trainable_.grad_slab();
  sum_.start(slab.subspan(static_cast<size_t>(b.begin), static_cast<size_t>(b.end - b.begin)));
}

void GradientBuckets::finish() {
  set_leaf_grad_observer(nullptr);
  for (Bucket& b : buckets_)
    if (!b.started) start(b);
  sum_.finish();
}

}  // namespace hydra::train
