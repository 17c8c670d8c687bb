// PCRE2 wrapper for the tokenizer (the contract is in regex.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "io/regex.h"

#include <pcre2.h>
#include <time.h>

#include <algorithm>

#include "io/utf8.h"
#include "tensor/error.h"

namespace hydra::io {

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  const int n = pcre2_get_error_message(code, buffer, sizeof buffer);
  return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<char*>(buffer), n);
}

double thread_cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

const char* const kCatastrophic = "the pattern backtracks catastrophically (nested or adjacent quantifiers?)";

}  // namespace

MatchBudget MatchBudget::for_text(uint64_t bytes) {
  MatchBudget b;
  b.steps_total_ = kMinSteps + kStepsPerByte * bytes;
  b.seconds_total_ = kMinSeconds + kSecondsPerByte * static_cast<double>(bytes);
  b.clock_start_ = thread_cpu_seconds();
  return b;
}

void MatchBudget::charge(uint64_t limit, uint64_t span, size_t at, size_t text_bytes) {
  steps_used_ += limit;
  unchecked_work_ += limit * span;
  if (unchecked_work_ < kWorkPerClockCheck) return;
  unchecked_work_ = 0;
  const double seconds = thread_cpu_seconds() - clock_start_;
  HYDRA_CHECK(seconds <= seconds_total_, "the pre-tokenizer's regex took more than ", seconds_total_,
              " s of CPU time on ", text_bytes, " bytes of text (stopped at byte offset ", at, "): ", kCatastrophic);
}

MatchScratch::MatchScratch() {
  context_ = pcre2_match_context_create(nullptr);
  // The default 32 KiB JIT stack is enough for the tokenizer patterns on ordinary text; up to 8 MiB
  // keeps backtracking over very long runs (a megabyte of spaces) from failing. One per thread.
  jit_stack_ = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
  HYDRA_ASSERT(context_ != nullptr && jit_stack_ != nullptr, "out of memory creating a PCRE2 JIT stack");
  pcre2_jit_stack_assign(context_, nullptr, jit_stack_);
}

MatchScratch::~MatchScratch() {
  pcre2_match_context_free(context_);
  pcre2_jit_stack_free(jit_stack_);
}

Regex::Regex(std::string_view pattern, bool literal) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  // (PCRE2_LITERAL allows UTF but not UCP; a literal has no classes for UCP to affect.)
  // Anchored: Matcher::find tries one start position per call (see there).
  const uint32_t options = PCRE2_UTF | PCRE2_ANCHORED | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &error, &offset,
                        nullptr);
  HYDRA_CHECK(code_ != nullptr, pcre2_message(error), " at offset ", offset, " of the pattern");
  // NOTE: JIT is an optimisation only: where it is unavailable, pcre2_match interprets the pattern
  // (the match limit bounds the work either way).
  pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD);
}

Regex::~Regex() { pcre2_code_free(code_); }

Regex::Matcher::Matcher(const Regex& regex, MatchScratch& scratch) : regex_(regex), scratch_(scratch) {
  data_ = pcre2_match_data_create_from_pattern(regex.code_, nullptr);
  HYDRA_ASSERT(data_ != nullptr, "out of memory creating PCRE2 match data");
}

Regex::Matcher::~Matcher() { pcre2_match_data_free(data_); }

int Regex::Matcher::match_at(std::string_view text, size_t at, size_t& window, uint64_t& limit, MatchBudget& budget) {
  while (true) {
    size_t stop = text.size() - at <= window ? text.size() : at + window;
    while (stop < text.size() && (static_cast<unsigned char>(text[stop]) & 0xC0) == 0x80) ++stop;  // whole chars
    const bool whole = stop == text.size();
    const uint64_t span = stop - at + 1;  // the most characters one step's inner loops can cover
    int rc = 0;
    while (true) {
      const uint64_t given = std::min<uint64_t>({limit, budget.steps_left(), UINT32_MAX});
      HYDRA_CHECK(given > 0, "the pre-tokenizer's regex needed more than ", budget.steps_used(),
                  " matching steps for ", text.size(), " bytes of text (stopped at byte offset ", at, "): ",
                  kCatastrophic);
      pcre2_set_match_limit(scratch_.context_, static_cast<uint32_t>(given));
      rc = pcre2_match(regex_.code_, reinterpret_cast<PCRE2_SPTR>(text.data()), stop, at,
                       PCRE2_NO_UTF_CHECK | (whole ? 0 : PCRE2_PARTIAL_HARD), data_, scratch_.context_);
      budget.charge(given, span, at, text.size());
      if (rc != PCRE2_ERROR_MATCHLIMIT) break;
      limit *= 2;
    }
    // A hard partial match: some path reached the window's end, so the answer may depend on what follows.
    if (rc != PCRE2_ERROR_PARTIAL) return rc;
    window *= 2;
  }
}

bool Regex::Matcher::find(std::string_view text, size_t start, size_t& begin, size_t& end, MatchBudget& budget) {
  uint64_t limit = kFirstLimit;
  for (size_t at = start; at <= text.size();
       at += at < text.size() ? utf8_sequence_length(static_cast<unsigned char>(text[at])) : 1) {
    size_t window = kFirstWindow;
    const int rc = match_at(text, at, window, limit, budget);
    if (rc == PCRE2_ERROR_NOMATCH) continue;
    HYDRA_CHECK(rc >= 0, "pre-tokenizer regex failed on the text: ", pcre2_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data_);
    begin = ovector[0];
    end = ovector[1];
    // \K can move a match's start outside [at, end); clamp rather than trust it.
    if (begin < at) begin = at;
    if (end < begin) end = begin;
    return true;
  }
  return false;
}

}  // namespace hydra::io
