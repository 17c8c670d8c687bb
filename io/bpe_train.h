// Training a byte-level BPE tokenizer (GPT-2's kind) on text, written as a HuggingFace tokenizer.json
// that io/tokenizer.h loads and HuggingFace's own tokenizers encode to the same ids.
//
//   1. Each text is cut at the special tokens (they separate documents and are never merged into),
//      and each stretch is split by GPT-2's pre-tokenizer regex into pieces (words with their leading
//      space, digit runs, symbol runs, whitespace); equal pieces are counted once with their count.
//   2. Every piece starts as its bytes (ids 0-255 are the 256 bytes, in byte order).
//   3. Repeatedly, the adjacent pair of tokens that occurs most often (counted over all pieces with
//      their counts) becomes a new token, appended to the merges; ties go to the pair with the smaller
//      left id, then the smaller right id. Every occurrence is replaced, left to right. A merge whose
//      bytes equal an existing token's reuses that id (two pairs can spell the same bytes).
//   4. It stops when vocab_size ids exist (the specials included, last), or when no pair occurs
//      min_frequency times.
// Pair counts are updated incrementally: a merge touches only the pieces that contain its pair (an
// index from pair to pieces), and a heap with lazy deletion finds the next best pair. Deterministic:
// the result depends only on the texts in order and the options.
//
// Not here: normalisation (none, as GPT-2), dropout, several threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/bpe.h"

namespace hydra::io {

struct BpeTrainOptions {
  int64_t vocab_size = 0;     // total ids: 256 bytes + merges + special tokens
  int64_t min_frequency = 2;  // a pair must occur at least this often to be merged
  std::vector<std::string> special_tokens = {"<|endoftext|>"};
};

struct BpeTrainResult {
  std::vector<std::string> tokens;  // id -> raw bytes; the special tokens last
  std::vector<std::pair<uint32_t, uint32_t>> merges;  // in rank order
  uint32_t first_special = 0;       // id of special_tokens[0]
  int64_t pieces = 0, distinct_pieces = 0;  // pre-tokenizer pieces counted, and how many differ
};

class BpeTrainer {
 public:
  // Checks the options (vocab_size leaves room for the bytes and specials; specials non-empty, distinct).
  explicit BpeTrainer(BpeTrainOptions options);

  // Counts the pieces of `text` (UTF-8; else an error naming `source` and the byte offset).
  void add_text(std::string_view text, const std::string& source);
  // Learns the merges. Call once, after every add_text.
  BpeTrainResult train();

 private:
  BpeTrainOptions options_;
  std::unordered_map<std::string, int64_t, StringHash, std::equal_to<>> piece_counts_;
  int64_t pieces_ = 0;
};

// The result as a HuggingFace tokenizer.json: BPE model (vocab in id order, merges as pairs),
// ByteLevel pre-tokenizer (GPT-2's regex, no prefix space) and decoder, the specials as added tokens.
std::string bpe_tokenizer_json(const BpeTrainResult& result, const std::vector<std::string>& special_tokens);

}  // namespace hydra::io
