#include "train/data.h"

#include <algorithm>
#include <sstream>

#include "io/json_file.h"
#include "train/permutation.h"

namespace hydra::train {

// ---- token windows ----

TokenWindows::TokenWindows(std::vector<io::TokenFile> files, int64_t seq, int64_t stride, int64_t max_tokens)
    : files_(std::move(files)), seq_(seq), stride_(stride) {
  HYDRA_CHECK(seq >= 1 && stride >= 1, "TokenWindows: seq and stride must be >= 1");
  HYDRA_CHECK(!files_.empty(), "no token files given");
  int64_t budget = max_tokens > 0 ? max_tokens : INT64_MAX;
  for (const io::TokenFile& f : files_) {
    const int64_t used = std::min(f.size(), budget);
    budget -= used;
    first_window_.push_back(total_);
    usable_.push_back(used);
    tokens_ += used;
    if (used >= seq + 1) total_ += (used - seq - 1) / stride + 1;
  }
  first_window_.push_back(total_);
  HYDRA_CHECK(total_ > 0, "the token data (", describe(), ") holds no window of ", seq + 1,
              " ids (--seq ", seq, " needs seq + 1 ids in one file)");
}

std::string TokenWindows::describe() const {
  std::ostringstream os;
  if (files_.size() == 1)
    os << files_[0].path();
  else
    os << files_.size() << " files";
  os << ", " << tokens_ << " tokens, " << total_ << " windows of " << seq_ + 1;
  return os.str();
}

Batch TokenWindows::make_batch(const std::vector<int64_t>& items) const {
  const int64_t B = static_cast<int64_t>(items.size()), T = seq_;
  Tensor inputs = empty({B, T}, DType::Int64), targets = empty({B, T}, DType::Int64);
  std::vector<int64_t> window(static_cast<size_t>(T + 1));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t w = items[b];
    HYDRA_ASSERT(w >= 0 && w < total_, "window ", w, " out of range ", total_);
    // The file holding window w: the last one whose first window is <= w.
    const size_t f = std::upper_bound(first_window_.begin(), first_window_.end() - 1, w) - first_window_.begin() - 1;
    files_[f].read((w - first_window_[f]) * stride_, T + 1, window.data());
    std::copy(window.begin(), window.begin() + T, inputs.data<int64_t>() + b * T);          // ids [0, T)
    std::copy(window.begin() + 1, window.end(), targets.data<int64_t>() + b * T);           // ids [1, T]
  }
  Batch batch;
  batch.inputs = inputs;
  batch.targets = targets;
  return batch;
}

// ---- order and shards ----

const char* data_order_name(DataOrder order) { return order == DataOrder::Shuffle ? "shuffle" : "sequential"; }

DataOrder parse_data_order(const std::string& name) {
  if (name == "shuffle") return DataOrder::Shuffle;
  if (name == "sequential") return DataOrder::Sequential;
  throw Error("unknown data order '" + name + "' (expected shuffle or sequential)");
}

std::pair<int64_t, int64_t> shard_range(int64_t n, int64_t shards, int64_t k) {
  HYDRA_ASSERT(shards >= 1 && k >= 0 && k < shards, "shard ", k, " of ", shards);
  const int64_t base = n / shards, extra = n % shards;
  const int64_t begin = k * base + std::min(k, extra);
  return {begin, begin + base + (k < extra ? 1 : 0)};
}

// ---- streams ----

DataStream::DataStream(std::shared_ptr<const Dataset> data, int64_t begin, int64_t end, DataOrder order, uint64_t seed)
    : data_(std::move(data)), begin_(begin), end_(end), order_(order), seed_(seed) {
  HYDRA_ASSERT(data_ && begin >= 0 && begin < end && end <= data_->size(), "DataStream range [", begin, ", ", end,
               ") of ", data_ ? data_->size() : 0, " items");
}

int64_t DataStream::item_at(int64_t position) const {
  const int64_t n = size();
  const int64_t within = position % n;
  if (order_ == DataOrder::Sequential) return begin_ + within;
  // A new permutation every epoch, keyed by (seed, epoch).
  const uint64_t epoch = static_cast<uint64_t>(position / n);
  RandomPermutation perm(static_cast<uint64_t>(n), mix64(seed_ ^ mix64(epoch)));
  return begin_ + static_cast<int64_t>(perm(static_cast<uint64_t>(within)));
}

std::vector<int64_t> DataStream::peek(int64_t batch_size) const {
  std::vector<int64_t> items(static_cast<size_t>(batch_size));
  for (int64_t b = 0; b < batch_size; ++b) items[b] = item_at(cursor_ + b);
  return items;
}

Batch DataStream::next(int64_t batch_size) {
  Batch batch = data_->make_batch(peek(batch_size));
  cursor_ += batch_size;
  return batch;
}

nlohmann::json DataStream::state() const {
  return {{"cursor", cursor_}, {"begin", begin_}, {"end", end_}, {"dataset_items", data_->size()},
          {"order", data_order_name(order_)}, {"seed", seed_}};
}

void DataStream::restore(const nlohmann::json& state, const std::string& what) {
  nlohmann::json mine = this->state();
  for (const char* key : {"begin", "end", "dataset_items", "order", "seed"})
    HYDRA_CHECK(state.contains(key) && state.at(key) == mine.at(key), what, ": the checkpoint's ", key, " is ",
                state.contains(key) ? io::json_excerpt(state.at(key)) : std::string("missing"), " but this run's is ",
                mine.at(key).dump(), " (the data or its split differ)");
  const int64_t cursor = state.at("cursor").get<int64_t>();
  HYDRA_CHECK(cursor >= 0, what, ": negative cursor ", cursor, " in the checkpoint");
  cursor_ = cursor;
}

}  // namespace hydra::train
