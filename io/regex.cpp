// PCRE2 wrapper for the tokenizer (the contract is in regex.h).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "io/regex.h"

#include <pcre2.h>

#include "tensor/error.h"

namespace hydra::io {

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  const int n = pcre2_get_error_message(code, buffer, sizeof buffer);
  return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<char*>(buffer), n);
}

}  // namespace

Regex::Regex(std::string_view pattern, bool literal) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  // (PCRE2_LITERAL allows UTF but not UCP; a literal has no classes for UCP to affect.)
  const uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options, &error, &offset,
                        nullptr);
  HYDRA_CHECK(code_ != nullptr, pcre2_message(error), " at offset ", offset, " of the pattern");
  // NOTE: JIT is an optimisation only: where it is unavailable, pcre2_match interprets the pattern.
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() { pcre2_code_free(code_); }

Regex::Matcher::Matcher(const Regex& regex) : regex_(regex) {
  data_ = pcre2_match_data_create_from_pattern(regex.code_, nullptr);
  HYDRA_ASSERT(data_ != nullptr, "out of memory creating PCRE2 match data");
  if (regex.jit_) {
    // The default 32 KiB JIT stack is enough for the tokenizer patterns on ordinary text; 8 MiB keeps
    // backtracking over very long runs (a megabyte of spaces) from failing.
    context_ = pcre2_match_context_create(nullptr);
    jit_stack_ = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    HYDRA_ASSERT(context_ != nullptr && jit_stack_ != nullptr, "out of memory creating a PCRE2 JIT stack");
    pcre2_jit_stack_assign(context_, nullptr, jit_stack_);
  }
}

Regex::Matcher::~Matcher() {
  pcre2_match_data_free(data_);
  pcre2_match_context_free(context_);
  pcre2_jit_stack_free(jit_stack_);
}

bool Regex::Matcher::find(std::string_view text, size_t start, size_t& begin, size_t& end) {
  const int rc = pcre2_match(regex_.code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start,
                             PCRE2_NO_UTF_CHECK, data_, context_);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  HYDRA_CHECK(rc >= 0, "pre-tokenizer regex failed on the text: ", pcre2_message(rc));
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data_);
  begin = ovector[0];
  end = ovector[1];
  // \K can move a match's start outside [start, end); clamp rather than trust it.
  if (begin < start) begin = start;
  if (end < begin) end = begin;
  return true;
}

}  // namespace hydra::io
