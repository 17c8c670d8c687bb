// Byte-pair encoding of one pre-token (the algorithm and its contract are in bpe.h).
#include "io/bpe.h"

#include <queue>

#include "tensor/error.h"

namespace hydra::io {

Bpe::Bpe(StringIdMap token_of_bytes, const std::vector<BpeMerge>& merges, bool ignore_merges)
    : token_of_bytes_(std::move(token_of_bytes)), ignore_merges_(ignore_merges) {
  for (unsigned b = 0; b < 256; ++b) {
    const auto it = token_of_bytes_.find(std::string(1, static_cast<char>(b)));
    HYDRA_ASSERT(it != token_of_bytes_.end(), "the vocab lacks byte ", b, " (the loader checks this)");
    byte_token_[b] = it->second;
  }
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const BpeMerge& m = merges[rank];
    // A pair listed twice keeps its first (lowest) rank, as HuggingFace's loader does.
    merges_.try_emplace(pair_key(m.left, m.right), MergeInfo{static_cast<uint32_t>(rank), m.merged});
  }
}

void Bpe::encode_word(std::string_view word, std::vector<uint32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_ || word.size() == 1) {
    const auto it = token_of_bytes_.find(word);
    if (it != token_of_bytes_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // One symbol per byte, in a doubly linked list by index; a merge keeps the left symbol (so a
  // symbol's index is its start byte, which orders ties) and unlinks the right one.
  const int n = static_cast<int>(word.size());
  std::vector<uint32_t> id(n);
  std::vector<int> prev(n), next(n);
  for (int i = 0; i < n; ++i) {
    id[i] = byte_token_[static_cast<uint8_t>(word[i])];
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    uint32_t rank;
    int pos;                 // the left symbol
    uint32_t left, right;    // the ids it had when pushed: a stale candidate no longer matches
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto push = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    const auto it = merges_.find(pair_key(id[pos], id[next[pos]]));
    if (it != merges_.end()) heap.push({it->second.rank, pos, id[pos], id[next[pos]]});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  std::vector<bool> alive(n, true);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    if (!alive[c.pos] || next[c.pos] < 0 || id[c.pos] != c.left || id[next[c.pos]] != c.right) continue;
    const int right = next[c.pos];
    id[c.pos] = merges_.find(pair_key(c.left, c.right))->second.merged;
    alive[right] = false;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  for (int i = 0; i >= 0; i = next[i]) out.push_back(id[i]);
}

}  // namespace hydra::io
