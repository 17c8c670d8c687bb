// Encoding and decoding with a loaded tokenizer (loading is in tokenizer_load.cpp; the contract is in
// tokenizer.h).
#include "io/tokenizer.h"

#include <algorithm>

#include "io/utf8.h"
#include "tensor/error.h"

namespace hydra::io {

namespace {

// Pre-tokens longer than this are not cached: they are rare (long runs of spaces or symbols) and
// would only fill the cache. The cache is emptied when it reaches kCacheEntries.
constexpr size_t kCacheMaxPiece = 64;
constexpr size_t kCacheEntries = 1 << 20;

}  // namespace

void Tokenizer::encode(std::string_view text, std::vector<uint32_t>& out, bool allow_special,
                       const std::string& source) const {
  require_utf8(text, source, "the tokenizer");
  MatcherSlot& slot = matcher_slot_;
  if (slot.matchers.size() != stages_.size()) {
    slot.matchers.clear();
    if (!slot.scratch) slot.scratch = std::make_unique<MatchScratch>();
    for (const auto& stage : stages_) slot.matchers.push_back(std::make_unique<Regex::Matcher>(*stage, *slot.scratch));
  }
  // Every stage sees each byte once (the pieces of one stage partition the text of the next).
  MatchBudget budget = MatchBudget::for_text(text.size() * std::max<size_t>(1, stages_.size()));

  // Added tokens cut the text first: at the leftmost position where one starts, the longest.
  size_t stretch = 0;
  for (size_t pos = 0; pos < text.size();) {
    const AddedTokenTrie::Match m = added_trie_.may_start(static_cast<unsigned char>(text[pos]))
                                        ? added_trie_.longest_at(text, pos, allow_special)
                                        : AddedTokenTrie::Match{};
    if (m.length == 0) {
      ++pos;
      continue;
    }
    encode_stretch(text.substr(stretch, pos - stretch), 0, slot.matchers, budget, out);
    out.push_back(added_[m.index].id);
    pos += m.length;
    stretch = pos;
  }
  encode_stretch(text.substr(stretch), 0, slot.matchers, budget, out);
  last_match_steps_ = budget.steps_used();
}

// Each regex stage splits its stretch (io/regex.h: split_isolated); the last stage's pieces are
// BPE-encoded.
void Tokenizer::encode_stretch(std::string_view text, size_t stage, Matchers& matchers, MatchBudget& budget,
                               std::vector<uint32_t>& out) const {
  if (text.empty()) return;
  if (stage == stages_.size()) {
    encode_piece(text, out);
    return;
  }
  split_isolated(*matchers[stage], text, budget,
                 [&](std::string_view piece) { encode_stretch(piece, stage + 1, matchers, budget, out); });
}

void Tokenizer::encode_piece(std::string_view piece, std::vector<uint32_t>& out) const {
  if (piece.size() > kCacheMaxPiece) {
    bpe_.encode_word(piece, out);
    return;
  }
  const auto it = cache_.find(piece);
  if (it != cache_.end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
    return;
  }
  const size_t first = out.size();
  bpe_.encode_word(piece, out);
  if (cache_.size() >= kCacheEntries) cache_.clear();
  cache_.emplace(std::string(piece), std::vector<uint32_t>(out.begin() + static_cast<std::ptrdiff_t>(first), out.end()));
}

std::string Tokenizer::decode(std::span<const uint32_t> ids) const {
  std::string text;
  for (const uint32_t id : ids) {
    HYDRA_CHECK(id < token_bytes_.size() && has_id_[id], "decode: token id ", id,
                " is not in the tokenizer's vocabulary (", vocab_size(), " ids)");
    text += token_bytes_[id];
  }
  return text;
}

std::optional<uint32_t> Tokenizer::token_id(std::string_view content) const {
  if (const auto added = added_by_content_.find(content); added != added_by_content_.end())
    return added_[added->second].id;
  const auto it = vocab_.find(content);
  if (it != vocab_.end()) return it->second;
  return std::nullopt;
}

}  // namespace hydra::io
