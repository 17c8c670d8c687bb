// Finding a tokenizer's added tokens ("<|endoftext|>", "<|im_start|>", ...) in a text: at each position,
// the longest token that starts there; the tokenizer cuts the text at the leftmost such position.
//
// A trie over the tokens' bytes (one hash map of edges, so 60,000 tokens load in linear time) and a
// table of the bytes any token starts with. Scanning a text costs one table lookup per byte, plus a walk
// down the trie where a token may start: at most kMaxAddedTokenBytes steps, so a text of n bytes costs
// at most n x kMaxAddedTokenBytes steps however hostile the tokens and the text.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hydra::io {

// Longer added tokens are refused when a tokenizer is loaded (real ones are a few dozen bytes).
inline constexpr size_t kMaxAddedTokenBytes = 1024;

class AddedTokenTrie {
 public:
  // Adds `content` (non-empty, at most kMaxAddedTokenBytes, not already added) as token `index`;
  // `special` tokens match only when allowed.
  void add(std::string_view content, uint32_t index, bool special);

  struct Match {
    uint32_t index = 0;  // as given to add()
    size_t length = 0;   // bytes; 0 when nothing matched
  };
  // The longest allowed token starting at text[pos].
  Match longest_at(std::string_view text, size_t pos, bool allow_special) const;
  // Whether any token starts with this byte (a cheap filter before longest_at).
  bool may_start(unsigned char byte) const { return first_byte_[byte]; }

 private:
  static uint64_t edge_key(uint32_t node, unsigned char byte) { return (uint64_t{node} << 8) | byte; }
  struct Terminal {
    int64_t index = -1;  // -1: no token ends at this node
    bool special = false;
  };
  std::unordered_map<uint64_t, uint32_t> edges_;  // (node, byte) -> child node
  std::vector<Terminal> terminal_{Terminal{}};    // per node; node 0 is the root
  std::array<bool, 256> first_byte_{};
};

}  // namespace hydra::io
