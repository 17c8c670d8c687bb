// The byte-pair-encoding model of a byte-level BPE tokenizer: turns one pre-token (raw bytes) into
// token ids.
//
// A pre-token starts as one symbol per byte (each byte is a token of its own); then, again and again,
// the adjacent pair with the lowest merge rank is replaced by its merged token, the leftmost pair
// when ranks tie, until no adjacent pair has a merge. This is what HuggingFace tokenizers does, and
// with merges derived from tiktoken ranks (each split of a token ranked by the token) it is what
// tiktoken does. With ignore_merges (cl100k, OLMo-2) a pre-token that is itself a vocab token becomes
// that token without merging.
//
// Cost: O(n log n) in the pre-token's length (a heap of candidate pairs over a linked list of
// symbols), so a megabyte of spaces is no problem; the tokenizer caches results per pre-token.
// Not here: dropout, unk tokens, byte fallback, subword prefixes/suffixes (the loader rejects them).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hydra::io {

// Transparent string hashing so maps keyed by std::string can be searched with a string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>>;

struct BpeMerge {
  uint32_t left, right;  // token ids of the pair
  uint32_t merged;       // token id of left + right
};

class Bpe {
 public:
  Bpe() = default;
  // `token_of_bytes`: every byte-level vocab token as raw bytes -> id (it must hold all 256 single
  // bytes); `merges` in rank order (rank = index), every id valid and merged == left + right as bytes.
  Bpe(StringIdMap token_of_bytes, const std::vector<BpeMerge>& merges, bool ignore_merges);

  // Appends the ids of `word` (raw bytes, non-empty) to `out`.
  void encode_word(std::string_view word, std::vector<uint32_t>& out) const;

 private:
  struct MergeInfo {
    uint32_t rank, merged;
  };
  static uint64_t pair_key(uint32_t a, uint32_t b) { return (uint64_t{a} << 32) | b; }

  StringIdMap token_of_bytes_;
  std::unordered_map<uint64_t, MergeInfo> merges_;
  std::array<uint32_t, 256> byte_token_{};
  bool ignore_merges_ = false;
};

}  // namespace hydra::io
