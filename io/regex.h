// A compiled PCRE2 pattern for the tokenizer's pre-tokenizer splits: UTF-8, Unicode properties
// (\p{L}, and \s, \d, \w by Unicode rules), JIT-compiled when PCRE2 supports it on this machine.
//
// Subjects must be valid UTF-8 (checked once by the caller, io/utf8.h): matching skips PCRE2's own
// check, which would otherwise re-scan the whole text at every match.
//
// Matching work is bounded per text, not per call. PCRE2's match limit counts backtracking steps of one
// call and applies afresh at every start position of an unanchored search, so a pattern with nested
// quantifiers (`(a+)+`, `(a|aa)*`) could spend exponential time at each of a text's positions. Here:
//   - the pattern is compiled anchored and find() tries one start position per call, in the order an
//     unanchored search would (same matches), so a call's limit bounds all of its steps;
//   - each call is given a match limit (32 steps, doubled while it is hit) and charged every limit it
//     was given (at most 4x its steps plus 32) to the text's MatchBudget; running out is an error.
// That step count is deterministic, but PCRE2 does not count the characters a single-character repeat
// scans (`\s*`, `a*`), so adjacent repeats over one long run (`a*a*x` on "aaa...") can do a whole scan
// per step: quadratic work within the step budget. For those the budget also holds a CPU-time limit:
//   - each call sees the text only up to a window past its start (16 bytes, doubled while PCRE2 says a
//     path reached the window's end, PCRE2_PARTIAL_HARD: the answer may then depend on what follows),
//     so limit x window bounds a call's work, and the thread's CPU time is read once that bound has
//     added up to kWorkPerClockCheck since the last reading.
// NOTE: the time limit is the one non-deterministic check in Hydra: real patterns use under 1% of it (a
// few tens of ns per byte against 5 us), so only a pathological pattern can meet it, and then the
// outcome is an error either way, at most a factor of 2 later on a slower machine.
// The matchers of one thread share one JIT stack (MatchScratch).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "io/utf8.h"

struct pcre2_real_code_8;
struct pcre2_real_match_data_8;
struct pcre2_real_match_context_8;
struct pcre2_real_jit_stack_8;

namespace hydra::io {

// What matching one text may cost (see above): match-limit steps, and CPU time.
class MatchBudget {
 public:
  // NOTE: GPT-2's and cl100k's patterns charge 7-10 steps per byte of prose and code and under 20 on
  // random printable ASCII (measured; tests/test_io_tokenizer.cpp checks a bound), so 256 per byte
  // leaves a wide margin; they take 15-20 ns per byte, against the 5 us per byte allowed here.
  static constexpr uint64_t kStepsPerByte = 256;
  static constexpr uint64_t kMinSteps = uint64_t{1} << 16;
  static constexpr double kSecondsPerByte = 5e-6;
  static constexpr double kMinSeconds = 1.0;
  static constexpr uint64_t kWorkPerClockCheck = uint64_t{1} << 24;

  // The budget for a text of `bytes` bytes (already multiplied by the number of regex stages).
  static MatchBudget for_text(uint64_t bytes);
  // Charges one pcre2_match call given `limit` steps over a subject `span` bytes past its start; error
  // when the steps or the time run out (`at` and `text_bytes` are for the message).
  void charge(uint64_t limit, uint64_t span, size_t at, size_t text_bytes);
  // The steps a call may still be given (0: the budget is spent).
  uint64_t steps_left() const { return steps_total_ - std::min(steps_used_, steps_total_); }
  uint64_t steps_used() const { return steps_used_; }

 private:
  uint64_t steps_total_ = 0, steps_used_ = 0;
  double seconds_total_ = 0, clock_start_ = 0;
  uint64_t unchecked_work_ = 0;
};

// One JIT stack and match context, shared by every matcher of one thread (so N patterns do not cost N
// stacks). Not thread-safe.
class MatchScratch {
 public:
  MatchScratch();
  ~MatchScratch();
  MatchScratch(const MatchScratch&) = delete;
  MatchScratch& operator=(const MatchScratch&) = delete;

 private:
  friend class Regex;  // Regex::Matcher uses both
  pcre2_real_match_context_8* context_ = nullptr;
  pcre2_real_jit_stack_8* jit_stack_ = nullptr;
};

class Regex {
 public:
  // `literal`: the pattern is a plain string (a Split with {"String": ...}). A bad pattern is a
  // hydra::Error "...: <PCRE2's message> at offset N of the pattern".
  Regex(std::string_view pattern, bool literal);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Match data for one pattern, using a thread's scratch (which must outlive it).
  class Matcher {
   public:
    Matcher(const Regex& regex, MatchScratch& scratch);
    ~Matcher();
    Matcher(const Matcher&) = delete;
    Matcher& operator=(const Matcher&) = delete;
    // The first match at or after byte `start` (a character boundary) of `text`: true and [begin, end)
    // set, or false if there is none. Charges `budget`; running out is a hydra::Error "... more than N
    // matching steps ...".
    bool find(std::string_view text, size_t start, size_t& begin, size_t& end, MatchBudget& budget);

   private:
    // pcre2_match's result at one start position, growing the window and the limit as needed.
    int match_at(std::string_view text, size_t at, size_t& window, uint64_t& limit, MatchBudget& budget);
    const Regex& regex_;
    MatchScratch& scratch_;
    pcre2_real_match_data_8* data_ = nullptr;
  };

  // The first limit and window a call gets (see the top of this file).
  static constexpr uint64_t kFirstLimit = 32;
  static constexpr size_t kFirstWindow = 16;

 private:
  pcre2_real_code_8* code_ = nullptr;
};

// Splits `text` as a HuggingFace Split pre-tokenizer with behavior "Isolated" does: every match is a
// piece and so is every stretch between matches; an empty match only marks a cut (the search then
// resumes one character later). Calls on_piece(std::string_view) for each non-empty piece, in order.
// The matching is charged to `budget`.
template <class OnPiece>
void split_isolated(Regex::Matcher& matcher, std::string_view text, MatchBudget& budget, OnPiece&& on_piece) {
  size_t gap = 0, from = 0, begin = 0, end = 0;
  while (from < text.size() && matcher.find(text, from, begin, end, budget)) {
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
