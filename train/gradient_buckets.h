// Data-parallel training's gradient sum, overlapped with backward (what PyTorch DDP's buckets do).
//
// Without it, every rank finishes its whole backward and only then sends its gradient slab: the network
// (or, on one machine, the memory bus) idles during backward and the cores idle during the exchange.
// Backward finishes the layers from the last to the first, so the last layers' gradients are final long
// before backward ends. Here the slab is cut into buckets, one per layer (consecutive parameters with
// the same "…blocks.N" prefix, or the same module), and each bucket's rank-ordered sum starts the moment
// its last gradient contribution has been added, while backward goes on below it.
//
// "Final" is counted, not guessed: before the rank's last micro-batch of the step, the trainer says how
// many contributions each parameter will still receive (one per use in the forward: a head's weights
// one per run of that head, the trunk's one per run of the trunk, the shared lm_head one per head run).
// The autograd engine reports every contribution (set_leaf_grad_observer); a bucket is complete when
// its count reaches zero. A contribution to a bucket already sent would be a bug and stops the run with
// an internal error rather than sending a wrong sum.
//
// MPI matches the ranks' sums by the order they are started, so every rank must start the buckets in
// the same order, and that order cannot be the order they complete in, which may depend on the data:
// a micro-batch with no counted target for a head runs no backward for that head, on that rank only
// (today's data never makes one: every SFT row has an answer token; the order must not hang on that). The buckets are started in one fixed order, the order backward usually completes them:
// each head's blocks (last block first, head 0 first), then what follows the heads (the lm_head), then
// the trunk's blocks from the last to the embedding. A bucket starts once it and every bucket before
// it in that order are complete; on a rank where one is late, the ones after it wait for it.
//
// The result is bit-identical to summing the whole slab after backward: each element is still the sum
// of the ranks' values in rank order (train/distributed.h); only the moment of sending changes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "train/distributed.h"
#include "train/trainable.h"

namespace hydra::train {

// The bucket a parameter belongs to: its name up to the block index ("trunk.blocks.3",
// "heads.1.blocks.0"), else its module's path ("trunk.embeddings", "lm_head.norm").
std::string bucket_key(const std::string& parameter_name);

// The gradient contributions each trainable parameter (in t.list() order) receives in one micro-batch:
// one per use in the forward. The trunk runs trunk_runs times, head k head_runs[k] times (absent: 0),
// and what comes after the heads (the shared lm_head) once per head run.
std::vector<int> uses_per_micro_batch(const TrainableParameters& t, int trunk_runs,
                                      const std::map<int64_t, int>& head_runs);

class GradientBuckets {
 public:
  explicit GradientBuckets(TrainableParameters& trainable);
  ~GradientBuckets();
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  // Starts watching the contributions of the rank's last micro-batch of the step. expected[i]: the
  // contributions parameter i (in trainable.list() order) will still receive. fold_stash: this step
  // stashed earlier micro-batches' gradients (TrainableParameters::fold_stash each bucket first).
  void arm(const std::vector<int>& expected, bool fold_stash);
  // Starts the buckets not started yet (in the fixed order; some may have received fewer contributions
  // than expected), and waits until every bucket is summed. Stops watching.
  void finish();
  // Stops watching without sending anything (an error unwinding the step; finish() also does it).
  void disarm();

  size_t size() const { return buckets_.size(); }
  int64_t started_early() const { return started_early_; }  // buckets started before finish(), last step

 private:
  struct Bucket {
    int64_t begin, end;  // slab elements
    int pending = 0;     // parameters whose count has not reached zero
    bool started = false;
  };
  void on_contribution(const TensorImpl& leaf);
  void start_ready();  // starts, in the fixed order, every complete bucket whose turn it is
  void start(Bucket& b);

  TrainableParameters& trainable_;
  std::vector<Bucket> buckets_;                        // in slab order
  std::vector<size_t> order_;                          // the fixed start order (indices into buckets_)
  size_t next_ = 0;                                    // the first bucket of order_ not started
  std::vector<size_t> bucket_of_;                      // parameter -> bucket
  std::unordered_map<const TensorImpl*, size_t> index_;  // parameter tensor -> parameter index
  std::vector<int> expected_, remaining_;
  bool fold_stash_ = false;
  int64_t started_early_ = 0;
  dist::RankOrderSum sum_;
};

}  // namespace hydra::train
