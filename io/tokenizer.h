// Byte-level BPE tokenizers in HuggingFace's tokenizer.json format (GPT-2, cl100k-style such as
// OLMo-2's dolma2): load, encode text to token ids, decode ids to text (docs/formats.md, 'tokenizer.json').
//
// Supported tokenizer.json (anything else is a hydra::Error naming the file and the field):
//   model          {"type": "BPE", "vocab": {token: id}, "merges": ["a b", ...] or [["a", "b"], ...],
//                   "ignore_merges": bool}; vocab tokens in GPT-2's byte-level alphabet (io/byte_level.h),
//                   all 256 single bytes present; dropout null, byte_fallback false, no subword
//                   prefix/suffix
//   normalizer     null
//   pre_tokenizer  ByteLevel (add_prefix_space false) alone (use_regex true: GPT-2's regex), or a
//                   Sequence of Split {pattern: {Regex | String}, behavior "Isolated", invert false}
//                   stages ending in ByteLevel. Regexes run in PCRE2 with UTF and Unicode properties.
//   decoder        null or ByteLevel
//   added_tokens   [{id, content, special, ...}] with lstrip/rstrip/single_word false
//   post_processor ignored: Hydra adds BOS/EOS itself (hydra tokenize --append-eos)
//
// Encoding: the text (valid UTF-8, else an error naming the source and byte offset) is cut at added
// tokens (leftmost, longest first): non-special ones always, special ones only when allowed (else
// they are plain text); each stretch between them is split by the regex stages, and each piece is
// BPE-encoded from its raw bytes (io/bpe.h). decode(encode(x)) == x for any valid UTF-8 x.
//
// What a hostile tokenizer.json can cost: reading it, at most kMaxTokenizerBytes (parsed in linear time,
// memory a small multiple of the file); loading, linear in its vocab, merges and added tokens; encoding
// n bytes, at most n x kMaxAddedTokenBytes trie steps to find added tokens, plus a regex budget of
// MatchBudget::for_text(n x stages) PCRE2 steps (io/regex.h) — a pattern that needs more is an error
// naming it — plus the BPE merges, O(n log n). At most kMaxPreTokenizerStages regex stages, sharing one
// JIT stack.
//
// Not thread-safe: encode uses a per-tokenizer cache of pre-token -> ids (most words repeat). Use one
// Tokenizer per thread (copies are independent).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/added_tokens.h"
#include "io/bpe.h"
#include "io/regex.h"

namespace hydra::io {

// GPT-2's pre-tokenizer regex, which HuggingFace's ByteLevel pre-tokenizer applies when use_regex is
// true: contractions, letter runs, digit runs and symbol runs (each with one optional leading space),
// then whitespace that is not followed by a non-space, then any other whitespace.
inline constexpr std::string_view kGpt2PreTokenizerPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct AddedToken {
  uint32_t id = 0;
  std::string content;  // plain UTF-8 text (not byte-level spelled)
  bool special = false;
};

// Limits on what a tokenizer.json may ask for (a hostile file must not cost unbounded time or memory).
inline constexpr uint64_t kMaxTokenizerBytes = 128 << 20;  // real ones are 2-35 MB
inline constexpr size_t kMaxPreTokenizerStages = 16;       // real ones have 1-3 regex stages

class Tokenizer {
 public:
  // Parses and validates a tokenizer.json held in memory; `file` names it in errors. No I/O, so a
  // fuzzer can call it; every malformed input is a hydra::Error.
  static Tokenizer from_json(std::string_view json_text, const std::string& file);
  // Reads `path` and calls from_json.
  static Tokenizer load(const std::string& path);

  // Appends the ids of `text` to `out`. `source` names the text in errors ("invalid UTF-8 in <source>
  // at byte offset N").
  void encode(std::string_view text, std::vector<uint32_t>& out, bool allow_special = false,
              const std::string& source = "text") const;
  std::vector<uint32_t> encode(std::string_view text, bool allow_special = false) const {
    std::vector<uint32_t> out;
    encode(text, out, allow_special);
    return out;
  }

  // The bytes the ids stand for (special tokens included). An id outside the vocabulary is an error.
  std::string decode(std::span<const uint32_t> ids) const;

  // One more than the largest id (vocab or added token): the size of an embedding table for it.
  uint64_t vocab_size() const { return token_bytes_.size(); }
  // The id of an added token with this content, else of the vocab token with these raw bytes.
  std::optional<uint32_t> token_id(std::string_view content) const;
  const std::vector<AddedToken>& added_tokens() const { return added_; }
  // The regex matching steps the last encode charged to its budget (tests and benchmarks).
  uint64_t last_match_steps() const { return last_match_steps_; }

 private:
  using Matchers = std::vector<std::unique_ptr<Regex::Matcher>>;
  void encode_stretch(std::string_view text, size_t stage, Matchers& matchers, MatchBudget& budget,
                      std::vector<uint32_t>& out) const;
  void encode_piece(std::string_view piece, std::vector<uint32_t>& out) const;

  Bpe bpe_;
  std::vector<std::string> token_bytes_;  // id -> raw bytes (an added token: its content)
  std::vector<bool> has_id_;              // ids with no token (holes) cannot be decoded
  StringIdMap vocab_;                     // raw bytes -> id, vocab tokens
  std::vector<AddedToken> added_;
  AddedTokenTrie added_trie_;  // index into added_
  std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>> added_by_content_;  // index into added_
  std::vector<std::shared_ptr<const Regex>> stages_;  // the pre-tokenizer's regex splits, in order
  // pre-token -> ids; see the class comment on threads.
  mutable std::unordered_map<std::string, std::vector<uint32_t>, StringHash, std::equal_to<>> cache_;
  // One matcher per stage and one JIT stack for them all, made on first use (a JIT stack costs ~15 us).
  // A copy of the tokenizer starts without any, so copies share nothing mutable.
  struct MatcherSlot {
    std::unique_ptr<MatchScratch> scratch;  // matchers point at it: a stable address
    Matchers matchers;
    MatcherSlot() = default;
    MatcherSlot(const MatcherSlot&) {}
    MatcherSlot& operator=(const MatcherSlot&) {
      matchers.clear();
      scratch.reset();
      return *this;
    }
    MatcherSlot(MatcherSlot&&) = default;
    MatcherSlot& operator=(MatcherSlot&&) = default;
  };
  mutable MatcherSlot matcher_slot_;
  mutable uint64_t last_match_steps_ = 0;

  friend struct TokenizerBuilder;
};

}  // namespace hydra::io
