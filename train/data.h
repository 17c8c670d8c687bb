// Training data: what a micro-batch is made of, and the order items are read in.
//
// A Dataset is a list of items that each become one row of a micro-batch:
//   TokenWindows  windows of T+1 ids from token files (the next-token objective): inputs are the first
//                 T ids, targets the last T;
//   SftDataset    prompt/answer rows (train/sft_data.h): targets only on the answer.
// A DataStream reads a contiguous range of a dataset's items (all of it, or one head's shard) in a
// given order with a cursor counting the items it has handed out since the start of the run:
//   sequential  item c of the stream is item (c mod size) of the range;
//   shuffle     epoch e = c div size reads the range through RandomPermutation(size, seed of e).
// Both are pure functions of (cursor, seed), so a stream's whole state is its cursor, and the micro-
// batch a run reads at any step does not depend on how it got there (resuming reads the same data).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/token_data.h"
#include "nn/cross_entropy.h"
#include "tensor/tensor.h"

namespace hydra::train {

// One micro-batch: inputs (B, T_b) int64 and targets (B, T_b) int64, kIgnoreIndex where not counted.
// The judge objective (train/judge.h) has no targets; it fills the last three fields instead.
struct Batch {
  Tensor inputs, targets;
  Tensor residual;  // (B, T_b, C) float32: the answer head's hidden state at each row's last position
  Tensor last;      // (B) int64: each row's last position
  Tensor label;     // (B) float32: 1 where the answer head's answer was right, else 0
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;  // number of items
  // The rows for these items, in this order.
  virtual Batch make_batch(const std::vector<int64_t>& items) const = 0;
  // "3 files, 1,234,567 tokens, 4,821 windows of 257" and the like, for banners.
  virtual std::string describe() const = 0;
};

// Windows of seq + 1 ids over token files read as one stream, in file order, never straddling two
// files. Window j of a file starts at j * stride; a file of L ids holds floor((L - seq - 1) / stride) + 1
// windows (none when L < seq + 1). stride = seq gives overlapping windows that predict every token once
// (the sequential order); stride = seq + 1 gives non-overlapping ones (the shuffled order).
// max_tokens > 0 reads only the first max_tokens ids of the stream (evaluation's fixed set).
class TokenWindows : public Dataset {
 public:
  TokenWindows(std::vector<io::TokenFile> files, int64_t seq, int64_t stride, int64_t max_tokens = 0);
  int64_t size() const override { return total_; }
  Batch make_batch(const std::vector<int64_t>& items) const override;
  std::string describe() const override;
  int64_t seq() const { return seq_; }
  int64_t tokens() const { return tokens_; }  // ids in the files (within max_tokens)

 private:
  std::vector<io::TokenFile> files_;
  std::vector<int64_t> first_window_;  // per file: index of its first window; one more entry at the end
  std::vector<int64_t> usable_;        // per file: ids read (max_tokens may cut the last one)
  int64_t seq_, stride_, total_ = 0, tokens_ = 0;
};

enum class DataOrder { Shuffle, Sequential };
const char* data_order_name(DataOrder order);          // "shuffle", "sequential"
DataOrder parse_data_order(const std::string& name);   // error listing the choices

// The contiguous shard k of n items split into `shards` parts: the first (n mod shards) shards are one
// item longer. Returns [begin, end).
std::pair<int64_t, int64_t> shard_range(int64_t n, int64_t shards, int64_t k);

class DataStream {
 public:
  // Reads items [begin, end) of `data` (begin < end) in `order`; `seed` picks the shuffles.
  DataStream(std::shared_ptr<const Dataset> data, int64_t begin, int64_t end, DataOrder order, uint64_t seed);

  // The next batch_size items as a batch; advances the cursor.
  Batch next(int64_t batch_size);
  // The items next(batch_size) would read, without advancing.
  std::vector<int64_t> peek(int64_t batch_size) const;

  int64_t size() const { return end_ - begin_; }
  int64_t cursor() const { return cursor_; }
  int64_t epoch() const { return cursor_ / size(); }
  const Dataset& dataset() const { return *data_; }

  // {"cursor": c, "begin": b, "end": e, "size": n, "order": ..., "seed": s} and back; restore checks that
  // everything but the cursor matches this stream (the same data, split and order).
  nlohmann::json state() const;
  void restore(const nlohmann::json& state, const std::string& what);

 private:
  int64_t item_at(int64_t position) const;  // the dataset item read at stream position `position`

  std::shared_ptr<const Dataset> data_;
  int64_t begin_, end_;
  DataOrder order_;
  uint64_t seed_;
  int64_t cursor_ = 0;
};

}  // namespace hydra::train
