// Text generation with a HydraTransformer: KV-cached decoding of one sequence (batch 1), the heads
// combined per token, and speculative product-of-experts decoding.
//
// Modes (GenerateOptions::mode):
//   Mean / ProductOfExperts   every head in `heads` runs; the next token comes from their combined
//                             distribution (hydra/sampling.h).
//   Head                      head `head` alone decides (the others in `heads` run only with signals).
//   Speculative               the draft head proposes up to gamma tokens one at a time on its own KV
//                             cache (the trunk's cache advances with it and the trunk states are kept);
//                             the other heads of `heads`, the verifiers, score all the proposals in one
//                             forward_heads call over those trunk states; proposal i is accepted with
//                             probability min(1, P(d_i) / q(d_i)), q the draft's distribution and P the
//                             verifiers' product of experts; at the first rejection a token is drawn from
//                             max(P - q, 0) renormalised (from P when that mass is below 1e-6) and every
//                             cache is synced back to the accepted length. Each round emits 1 to gamma
//                             tokens, distributed exactly as P (the standard speculative-sampling proof).
//
// Temperature 0 is greedy: the argmax of the combined distribution taken at temperature 1, ties to the
// lowest id. In Speculative mode the draft then proposes its argmax and a proposal is accepted exactly
// when it is P's argmax, else P's argmax is emitted: the output equals greedy ProductOfExperts decoding
// over the verifier heads token for token (the GEMM and attention kernels give every row of a small
// product the same bits whatever the number of rows, tensor/gemm.h, so the verifiers' logits over gamma
// positions at once equal those one position at a time).
//
// Sampling draws uniforms from a counter-based Generator (seed, draw number), so a run is reproducible
// for any thread count. The ids [0, vocab_limit) may be generated: a padded vocabulary's extra rows
// never are. Token i's trust signals: P(token), the entropy of P, each running head's argmax, the vote
// margin and P's top-1 minus top-2 probability, where P is the combined distribution at the sampling
// temperature (1 when greedy) before top-k / top-p.
//
// The caches are allocated for the call and freed before it returns (also on an exception), and the
// call runs under NoGradGuard: the model is left as it was found, so a trainer can sample mid-run.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "hydra/hydra_transformer.h"
#include "hydra/sampling.h"

namespace hydra {

enum class GenerateMode { Mean, ProductOfExperts, Head, Speculative };

// "mean", "poe", "head:K" (K into *head), "speculative"; anything else is a hydra::Error.
GenerateMode parse_generate_mode(const std::string& text, int64_t* head);
std::string generate_mode_name(GenerateMode mode, int64_t head);

// The longest prompt + new tokens a call accepts unless GenerateOptions::max_context says otherwise:
// the context length OLMo-2 is trained with (a Hydra config records no context length of its own).
constexpr int64_t kDefaultMaxContext = 4096;

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  GenerateMode mode = GenerateMode::Mean;
  int64_t head = 0;             // Head mode: the head that decides
  std::vector<int64_t> heads;   // the heads taking part (empty: all, in order)
  std::vector<double> beta;     // PoE weights: empty (all 1), one for every head, or one per combined head
  int64_t gamma = 4;            // Speculative: proposals per round, 1..kMaxGamma
  std::optional<int64_t> draft_head;  // Speculative: else drawn from `heads` with the seed
  double temperature = 0.8;     // 0: greedy
  int64_t top_k = 0;            // 0: off
  double top_p = 1.0;           // 1: off; in (0, 1]
  uint64_t seed = 0;
  int64_t vocab_limit = 0;      // ids >= this are never generated (0: the model's vocab_size)
  std::optional<int64_t> stop_id;  // generation ends after emitting this id (the EOS token)
  int64_t max_context = kDefaultMaxContext;  // prompt + max_new_tokens may not exceed it
  bool signals = false;         // Head mode: also run the other heads, for their argmaxes
};

// Rows the verifiers score at once are rows of one small product; up to this many the kernels keep
// each row's bits independent of the row count (tensor/gemm.h), which greedy equivalence relies on.
constexpr int64_t kMaxGamma = 16;

struct GeneratedToken {
  int64_t id = 0;
  double prob = 0;        // P(id)
  double entropy = 0;     // of P, nats
  double top_margin = 0;  // P's largest probability minus its second largest
  std::vector<int64_t> head_argmax;  // per running head, in GenerateResult::signal_heads order
  int64_t vote_margin = 0;
  // Speculative mode: a proposal of the draft that was accepted (drafted), or the token drawn after a
  // rejection (not drafted; rejected_draft is the proposal it replaced).
  bool drafted = false;
  std::optional<int64_t> rejected_draft;
};

struct GenerateResult {
  std::vector<int64_t> ids;  // the generated ids (not the prompt)
  std::string stop_reason;   // "length", "stop_id", or "callback"
  std::vector<int64_t> signal_heads;  // the heads whose argmaxes GeneratedToken::head_argmax lists
  std::vector<int64_t> verifier_heads;  // Speculative: the heads combined into P
  int64_t draft_head = -1;              // Speculative
  int64_t prompt_tokens = 0, prefill_tokens = 0;  // prefill_tokens: run through the model before decoding
  double prefill_seconds = 0, decode_seconds = 0;
  int64_t drafted = 0, accepted = 0;  // Speculative: proposals made and accepted
  double acceptance_rate() const { return drafted > 0 ? static_cast<double>(accepted) / static_cast<double>(drafted) : 0; }
};

// Throws hydra::Error (naming the command-line flag) for options that cannot work with this model and
// a prompt of prompt_tokens ids, before any work.
void check_generate_options(const GenerateOptions& options, const HydraTransformerConfig& config,
                            int64_t prompt_tokens);

// Generates up to max_new_tokens after `prompt` (ids in [0, vocab_size)). on_token sees each token as
// it is emitted and returns false to stop there.
GenerateResult generate(HydraTransformer& model, const std::vector<int64_t>& prompt, const GenerateOptions& options,
                        const std::function<bool(const GeneratedToken&)>& on_token = {});

}  // namespace hydra
