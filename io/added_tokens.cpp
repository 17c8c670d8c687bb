// The added-token trie (the contract is in added_tokens.h).
#include "io/added_tokens.h"

#include "tensor/error.h"

namespace hydra::io {

void AddedTokenTrie::add(std::string_view content, uint32_t index, bool special) {
  HYDRA_ASSERT(!content.empty() && content.size() <= kMaxAddedTokenBytes, "added token of ", content.size(),
               " bytes");
  uint32_t node = 0;
  for (const char c : content) {
    const auto [it, inserted] = edges_.try_emplace(edge_key(node, static_cast<unsigned char>(c)),
                                                   static_cast<uint32_t>(terminal_.size()));
    if (inserted) terminal_.emplace_back();
    node = it->second;
  }
  HYDRA_ASSERT(terminal_[node].index < 0, "added token listed twice");
  terminal_[node] = {index, special};
  first_byte_[static_cast<unsigned char>(content[0])] = true;
}

AddedTokenTrie::Match AddedTokenTrie::longest_at(std::string_view text, size_t pos, bool allow_special) const {
  Match best;
  uint32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto it = edges_.find(edge_key(node, static_cast<unsigned char>(text[i])));
    if (it == edges_.end()) break;
    node = it->second;
    const Terminal& t = terminal_[node];
    if (t.index >= 0 && (allow_special || !t.special)) best = {static_cast<uint32_t>(t.index), i + 1 - pos};
  }
  return best;
}

}  // namespace hydra::io
