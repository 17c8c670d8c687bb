// A compiled PCRE2 pattern for the tokenizer's pre-tokenizer splits: UTF-8, Unicode properties
// (\p{L}, and \s, \d, \w by Unicode rules), JIT-compiled when PCRE2 supports it on this machine.
//
// Subjects must be valid UTF-8 (checked once by the caller, io/utf8.h): matching skips PCRE2's own
// check, which would otherwise re-scan the whole text at every match.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "io/utf8.h"

struct pcre2_real_code_8;
struct pcre2_real_match_data_8;
struct pcre2_real_match_context_8;
struct pcre2_real_jit_stack_8;

namespace hydra::io {

class Regex {
 public:
  // `literal`: the pattern is a plain string (a Split with {"String": ...}). A bad pattern is a
  // hydra::Error "...: <PCRE2's message> at offset N of the pattern".
  Regex(std::string_view pattern, bool literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Scratch space for matching; one per thread.
  class Matcher {
   public:
    explicit Matcher(const Regex& regex);
    ~Matcher();
    Matcher(const Matcher&) = delete;
    Matcher& operator=(const Matcher&) = delete;
    // The first match at or after byte `start` (a character boundary) of `text`: true and [begin, end)
    // set, or false if there is none.
    bool find(std::string_view text, size_t start, size_t& begin, size_t& end);

   private:
    const Regex& regex_;
    pcre2_real_match_data_8* data_ = nullptr;
    pcre2_real_match_context_8* context_ = nullptr;
    pcre2_real_jit_stack_8* jit_stack_ = nullptr;
  };

 private:
  pcre2_real_code_8* code_ = nullptr;
  bool jit_ = false;
};

// Splits `text` as a HuggingFace Split pre-tokenizer with behavior "Isolated" does: every match is a
// piece and so is every stretch between matches; an empty match only marks a cut (the search then
// resumes one character later). Calls on_piece(std::string_view) for each non-empty piece, in order.
template <class OnPiece>
void split_isolated(Regex::Matcher& matcher, std::string_view text, OnPiece&& on_piece) {
  size_t gap = 0, from = 0, begin = 0, end = 0;
  while (from < text.size() && matcher.find(text, from, begin, end)) {
    if (begin > gap) on_piece(text.substr(gap, begin - gap));
    if (end == begin) {
      gap = begin;
      if (begin >= text.size()) break;
      from = begin + utf8_sequence_length(static_cast<unsigned char>(text[begin]));
      continue;
    }
    on_piece(text.substr(begin, end - begin));
    gap = from = end;
  }
  if (gap < text.size()) on_piece(text.substr(gap));
}

}  // namespace hydra::io
