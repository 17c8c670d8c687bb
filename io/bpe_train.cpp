// Byte-level BPE training (the contract is in bpe_train.h).
#include "io/bpe_train.h"

#include <algorithm>
#include <queue>
#include <set>

#include <nlohmann/json.hpp>

#include "io/byte_level.h"
#include "io/regex.h"
#include "io/tokenizer.h"
#include "io/utf8.h"
#include "tensor/error.h"

namespace hydra::io {

namespace {

uint64_t pair_key(uint32_t left, uint32_t right) { return (uint64_t{left} << 32) | right; }
uint32_t left_of(uint64_t key) { return static_cast<uint32_t>(key >> 32); }
uint32_t right_of(uint64_t key) { return static_cast<uint32_t>(key); }

// A candidate in the heap: a pair and its count when pushed. An entry whose count differs from the
// pair's current count is stale and skipped when it comes up (lazy deletion).
struct Candidate {
  int64_t count;
  uint64_t key;
};
// The heap's order: the larger count first, then the smaller (left, right), i.e. the smaller key.
struct LowerPriority {
  bool operator()(const Candidate& x, const Candidate& y) const {
    return x.count < y.count || (x.count == y.count && x.key > y.key);
  }
};

// Distinct pieces with their counts, as token sequences, and the state of the merge loop.
class MergeState {
 public:
  MergeState(const std::unordered_map<std::string, int64_t, StringHash, std::equal_to<>>& piece_counts) {
    // The numbering of the pieces (hash order) decides nothing: counts are sums over pieces, and the
    // heap orders pairs by (count, key) alone.
    words_.reserve(piece_counts.size());
    for (const auto& [piece, count] : piece_counts) {
      Word w;
      w.count = count;
      w.symbols.assign(piece.begin(), piece.end());
      for (uint32_t& symbol : w.symbols) symbol &= 0xFF;  // chars to byte values
      words_.push_back(std::move(w));
    }
    for (uint32_t w = 0; w < words_.size(); ++w) {
      const Word& word = words_[w];
      for (size_t i = 0; i + 1 < word.symbols.size(); ++i) {
        const uint64_t key = pair_key(word.symbols[i], word.symbols[i + 1]);
        counts_[key] += word.count;
        where_[key].push_back(w);
      }
    }
    for (const auto& [key, count] : counts_) heap_.push({count, key});
  }

  // The most frequent pair with at least min_count occurrences; false when there is none.
  bool best(int64_t min_count, uint64_t& key) {
    while (!heap_.empty()) {
      const Candidate top = heap_.top();
      const auto it = counts_.find(top.key);
      if (it == counts_.end() || it->second != top.count) {
        heap_.pop();  // stale
        continue;
      }
      if (top.count < min_count) return false;
      key = top.key;
      return true;
    }
    return false;
  }

  // Replaces every occurrence of the pair `key` by `merged`, updating the pair counts of the pieces
  // that held it (and only those).
  void merge(uint64_t key, uint32_t merged) {
    const uint32_t a = left_of(key), b = right_of(key);
    std::vector<uint32_t> holders = std::move(where_[key]);
    where_.erase(key);
    std::sort(holders.begin(), holders.end());
    holders.erase(std::unique(holders.begin(), holders.end()), holders.end());
    delta_.clear();
    for (uint32_t w : holders) {
      std::vector<uint32_t>& s = words_[w].symbols;
      const int64_t count = words_[w].count;
      bool holds = false;
      for (size_t i = 0; i + 1 < s.size() && !holds; ++i) holds = s[i] == a && s[i + 1] == b;
      if (!holds) continue;  // an index entry left over from before an earlier merge
      for (size_t i = 0; i + 1 < s.size(); ++i) delta_[pair_key(s[i], s[i + 1])] -= count;
      size_t out = 0;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          s[out++] = merged;
          i += 2;
        } else {
          s[out++] = s[i++];
        }
      }
      s.resize(out);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        const uint64_t k = pair_key(s[i], s[i + 1]);
        delta_[k] += count;
        // Only pairs with the new token are new to this piece; the others are indexed already.
        if (s[i] == merged || s[i + 1] == merged) where_[k].push_back(w);
      }
    }
    // Apply the changes in key order (the heap's content then does not depend on hash order).
    changed_.clear();
    for (const auto& [k, d] : delta_)
      if (d != 0) changed_.push_back(k);
    std::sort(changed_.begin(), changed_.end());
    for (uint64_t k : changed_) {
      int64_t& c = counts_[k];
      c += delta_[k];
      if (c <= 0) {
        HYDRA_ASSERT(c == 0, "bpe_train: pair count went negative");
        counts_.erase(k);
      } else {
        heap_.push({c, k});
      }
    }
    HYDRA_ASSERT(counts_.find(key) == counts_.end(), "bpe_train: the merged pair still occurs");
  }

 private:
  struct Word {
    std::vector<uint32_t> symbols;
    int64_t count = 0;
  };
  std::vector<Word> words_;
  std::unordered_map<uint64_t, int64_t> counts_;                 // pair -> occurrences (only > 0)
  std::unordered_map<uint64_t, std::vector<uint32_t>> where_;    // pair -> pieces that may hold it
  std::priority_queue<Candidate, std::vector<Candidate>, LowerPriority> heap_;
  std::unordered_map<uint64_t, int64_t> delta_;  // scratch: count changes of one merge
  std::vector<uint64_t> changed_;
};

}  // namespace

BpeTrainer::BpeTrainer(BpeTrainOptions options) : options_(std::move(options)) {
  const int64_t specials = static_cast<int64_t>(options_.special_tokens.size());
  HYDRA_CHECK(options_.vocab_size >= 256 + specials, "--vocab-size ", options_.vocab_size,
              " is too small: the 256 byte tokens and ", specials, " special token(s) need ", 256 + specials);
  HYDRA_CHECK(options_.vocab_size <= (int64_t{1} << 31), "--vocab-size ", options_.vocab_size, " is too large");
  HYDRA_CHECK(options_.min_frequency >= 1, "--min-frequency must be >= 1, got ", options_.min_frequency);
  std::set<std::string> seen;
  for (const std::string& s : options_.special_tokens) {
    HYDRA_CHECK(!s.empty(), "bpe_train: a special token is empty");
    HYDRA_CHECK(utf8_invalid_offset(s) == std::string_view::npos, "bpe_train: special token is not UTF-8");
    HYDRA_CHECK(seen.insert(s).second, "bpe_train: special token '", s, "' is listed twice");
  }
}

void BpeTrainer::add_text(std::string_view text, const std::string& source) {
  require_utf8(text, source, "tokenizer training");
  static const Regex pattern(kGpt2PreTokenizerPattern, false);
  MatchScratch scratch;
  Regex::Matcher matcher(pattern, scratch);
  MatchBudget budget = MatchBudget::for_text(text.size());  // as the tokenizer charges one stage
  auto count_stretch = [&](std::string_view stretch) {
    split_isolated(matcher, stretch, budget, [&](std::string_view piece) {
      ++pieces_;
      const auto it = piece_counts_.find(piece);
      if (it != piece_counts_.end())
        ++it->second;
      else
        piece_counts_.emplace(std::string(piece), 1);
    });
  };
  // The special tokens cut the text (leftmost first, the longest at one place) and are not counted.
  size_t pos = 0;
  while (pos < text.size()) {
    size_t best = std::string_view::npos, length = 0;
    for (const std::string& s : options_.special_tokens) {
      const size_t at = text.find(s, pos);
      if (at < best || (at == best && at != std::string_view::npos && s.size() > length)) {
        best = at;
        length = s.size();
      }
    }
    if (best == std::string_view::npos) {
      count_stretch(text.substr(pos));
      break;
    }
    count_stretch(text.substr(pos, best - pos));
    pos = best + length;
  }
}

BpeTrainResult BpeTrainer::train() {
  BpeTrainResult r;
  r.pieces = pieces_;
  r.distinct_pieces = static_cast<int64_t>(piece_counts_.size());
  for (int b = 0; b < 256; ++b) r.tokens.push_back(std::string(1, static_cast<char>(b)));
  std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>> id_of;
  for (uint32_t b = 0; b < 256; ++b) id_of.emplace(r.tokens[b], b);

  const size_t target = static_cast<size_t>(options_.vocab_size) - options_.special_tokens.size();
  MergeState state(piece_counts_);
  piece_counts_.clear();
  uint64_t key = 0;
  while (r.tokens.size() < target && state.best(options_.min_frequency, key)) {
    std::string bytes = r.tokens[left_of(key)] + r.tokens[right_of(key)];
    auto [it, added] = id_of.emplace(std::move(bytes), static_cast<uint32_t>(r.tokens.size()));
    if (added) r.tokens.push_back(it->first);
    r.merges.emplace_back(left_of(key), right_of(key));
    state.merge(key, it->second);
  }
  r.first_special = static_cast<uint32_t>(r.tokens.size());
  for (const std::string& s : options_.special_tokens) r.tokens.push_back(s);
  return r;
}

std::string bpe_tokenizer_json(const BpeTrainResult& r, const std::vector<std::string>& special_tokens) {
  using ordered_json = nlohmann::ordered_json;
  ordered_json vocab = ordered_json::object();
  for (size_t id = 0; id < r.tokens.size(); ++id) {
    // A special token sits in the vocab under its plain text, as GPT-2's does.
    const bool special = id >= r.first_special;
    vocab[special ? r.tokens[id] : byte_level_encode(r.tokens[id])] = id;
  }
  ordered_json merges = ordered_json::array();
  for (const auto& [a, b] : r.merges) merges.push_back({byte_level_encode(r.tokens[a]), byte_level_encode(r.tokens[b])});
  ordered_json added = ordered_json::array();
  for (size_t i = 0; i < special_tokens.size(); ++i)
    added.push_back({{"id", r.first_special + i},
                     {"content", special_tokens[i]},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  const ordered_json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  ordered_json j = {{"version", "1.0"},
                    {"truncation", nullptr},
                    {"padding", nullptr},
                    {"added_tokens", added},
                    {"normalizer", nullptr},
                    {"pre_tokenizer", byte_level},
                    {"post_processor", nullptr},
                    {"decoder", byte_level},
                    {"model",
                     {{"type", "BPE"},
                      {"dropout", nullptr},
                      {"unk_token", nullptr},
                      {"continuing_subword_prefix", nullptr},
                      {"end_of_word_suffix", nullptr},
                      {"fuse_unk", false},
                      {"byte_fallback", false},
                      {"ignore_merges", false},
                      {"vocab", vocab},
                      {"merges", merges}}}};
  return j.dump(2) + "\n";
}

}  // namespace hydra::io
