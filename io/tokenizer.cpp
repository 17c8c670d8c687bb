// Encoding and decoding with a loaded tokenizer (loading is in tokenizer_load.cpp; the contract is in
// tokenizer.h).
#include "io/tokenizer.h"

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
  Matchers& matchers = matcher_slot_.matchers;
  if (matchers.size() != stages_.size()) {
    matchers.clear();
    for (const auto& stage : stages_) matchers.push_back(std::make_unique<Regex::Matcher>(*stage));
  }

  // Added tokens cut the text first. next_at[k] caches where token k next occurs (npos: nowhere
  // further), so the text is searched once per token, not once per token per cut.
  std::vector<const AddedToken*> cutters;
  for (const AddedToken& token : added_)
    if (allow_special || !token.special) cutters.push_back(&token);
  std::vector<size_t> next_at(cutters.size());
  for (size_t k = 0; k < cutters.size(); ++k) next_at[k] = text.find(cutters[k]->content);
  size_t pos = 0;
  while (true) {
    size_t best = std::string_view::npos;
    const AddedToken* cutter = nullptr;
    for (size_t k = 0; k < cutters.size(); ++k) {
      if (next_at[k] != std::string_view::npos && next_at[k] < pos) next_at[k] = text.find(cutters[k]->content, pos);
      if (next_at[k] == std::string_view::npos) continue;
      // Leftmost wins; at the same place, the longest ("<|im_start|>" over a shorter prefix token).
      if (next_at[k] < best || (next_at[k] == best && cutters[k]->content.size() > cutter->content.size())) {
        best = next_at[k];
        cutter = cutters[k];
      }
    }
    if (cutter == nullptr) {
      encode_stretch(text.substr(pos), 0, matchers, out);
      return;
    }
    encode_stretch(text.substr(pos, best - pos), 0, matchers, out);
    out.push_back(cutter->id);
    pos = best + cutter->content.size();
  }
}

// Each regex stage splits its stretch (io/regex.h: split_isolated); the last stage's pieces are
// BPE-encoded.
void Tokenizer::encode_stretch(std::string_view text, size_t stage, Matchers& matchers,
                               std::vector<uint32_t>& out) const {
  if (text.empty()) return;
  if (stage == stages_.size()) {
    encode_piece(text, out);
    return;
  }
  split_isolated(*matchers[stage], text,
                 [&](std::string_view piece) { encode_stretch(piece, stage + 1, matchers, out); });
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
  for (const AddedToken& token : added_)
    if (token.content == content) return token.id;
  const auto it = vocab_.find(content);
  if (it != vocab_.end()) return it->second;
  return std::nullopt;
}

}  // namespace hydra::io
