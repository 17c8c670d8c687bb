// KV-cached decoding, combined heads and speculative product-of-experts decoding (contract in generate.h).
#include "hydra/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"

namespace hydra {

namespace {

// A proposal is replaced by a draw from P itself when max(P - q, 0) has less mass than this: the
// residual is then mostly rounding noise (P and q agree to ~1e-6 everywhere).
constexpr double kMinResidualMass = 1e-6;

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

std::vector<int64_t> resolved_heads(const GenerateOptions& o, int64_t n_heads) {
  if (!o.heads.empty()) return o.heads;
  std::vector<int64_t> all(static_cast<size_t>(n_heads));
  for (int64_t k = 0; k < n_heads; ++k) all[k] = k;
  return all;
}

// The draft head: the one asked for, else one of `heads` drawn with the seed (stream 1, so the token
// draws on stream 0 are the same whichever head drafts).
int64_t pick_draft_head(const GenerateOptions& o, const std::vector<int64_t>& heads) {
  if (o.draft_head) return *o.draft_head;
  const Generator gen(o.seed);
  return heads[gen.bits(0, 1) % heads.size()];
}

// The PoE weights for `count` combined heads.
std::vector<double> resolved_beta(const std::vector<double>& beta, size_t count) {
  if (beta.empty()) return std::vector<double>(count, 1.0);
  if (beta.size() == 1) return std::vector<double>(count, beta[0]);
  return beta;
}

// Frees every KV cache when the call ends, however it ends.
struct CacheGuard {
  HydraTransformer& model;
  ~CacheGuard() { model.free_kv_cache(); }
};

// The state of one generate() call: the options resolved, and every buffer the loop reuses.
class Decoder {
 public:
  Decoder(HydraTransformer& model, const GenerateOptions& o, const std::function<bool(const GeneratedToken&)>& on_token)
      : model_(model), o_(o), on_token_(on_token), gen_(o.seed) {
    vocab_ = o.vocab_limit > 0 ? o.vocab_limit : model.config().base_config.vocab_size;
    token_ = zeros({1, 1}, DType::Int64);
  }

  GenerateResult run(const std::vector<int64_t>& prompt) {
    const std::vector<int64_t> heads = resolved_heads(o_, model_.config().n_heads);
    result_.prompt_tokens = static_cast<int64_t>(prompt.size());
    // Every position the loop writes: the prompt and every generated token but the last.
    model_.init_kv_cache(1, static_cast<int64_t>(prompt.size()) + o_.max_new_tokens - 1);
    if (o_.mode == GenerateMode::Speculative)
      run_speculative(prompt, heads);
    else
      run_combined(prompt, heads);
    return std::move(result_);
  }

 private:
  Tensor ids_tensor(const std::vector<int64_t>& ids, size_t begin, size_t end) {
    return from_vector(std::vector<int64_t>(ids.begin() + static_cast<std::ptrdiff_t>(begin),
                                            ids.begin() + static_cast<std::ptrdiff_t>(end)),
                       {1, static_cast<int64_t>(end - begin)});
  }
  // The reused (1, 1) input holding `id`.
  const Tensor& one_token(int64_t id) {
    token_.data<int64_t>()[0] = id;
    return token_;
  }
  double next_uniform() { return uniform01(gen_, draws_++, 0); }

  // P (at the sampling temperature, 1 when greedy) from `rows`, and the token it gives.
  int64_t choose(Combine how, const std::vector<const float*>& rows, const std::vector<double>& beta) {
    const bool greedy = o_.temperature == 0;
    combine_distribution(how, rows, beta, vocab_, greedy ? 1.0 : o_.temperature, p_);
    if (greedy) return argmax(p_);
    truncated_ = p_;
    truncate_top_k_top_p(truncated_, o_.top_k, o_.top_p, order_);
    return sample_index(truncated_, next_uniform());
  }

  // The signals of `token` under p_, with the running heads' rows for their argmaxes.
  GeneratedToken describe(int64_t token, const std::vector<const float*>& signal_rows) {
    GeneratedToken t;
    t.id = token;
    t.prob = p_[token];
    t.entropy = entropy(p_);
    t.top_margin = top_two_margin(p_);
    for (const float* row : signal_rows) t.head_argmax.push_back(argmax(row, vocab_));
    t.vote_margin = vote_margin(t.head_argmax, token);
    return t;
  }

  // Records the token; false when generation must end after it.
  bool emit(const GeneratedToken& t) {
    result_.ids.push_back(t.id);
    if (on_token_ && !on_token_(t)) {
      result_.stop_reason = "callback";
      return false;
    }
    if (o_.stop_id && t.id == *o_.stop_id) {
      result_.stop_reason = "stop_id";
      return false;
    }
    if (static_cast<int64_t>(result_.ids.size()) >= o_.max_new_tokens) {
      result_.stop_reason = "length";
      return false;
    }
    return true;
  }

  // Row (head r, position t) of logits (n, 1, T, V).
  static const float* row(const Tensor& logits, int64_t r, int64_t t) {
    const int64_t T = logits.size(2), V = logits.size(3);
    return logits.data<float>() + (r * T + t) * V;
  }

  // Mean, ProductOfExperts and Head: prefill the prompt, then one token at a time.
  void run_combined(const std::vector<int64_t>& prompt, const std::vector<int64_t>& heads) {
    std::vector<int64_t> running = heads;
    size_t decider = 0;  // Head mode: the row of the deciding head
    if (o_.mode == GenerateMode::Head) {
      if (!o_.signals) running.clear();
      auto it = std::find(running.begin(), running.end(), o_.head);
      if (it == running.end()) it = running.insert(running.end(), o_.head);
      decider = static_cast<size_t>(it - running.begin());
    }
    result_.signal_heads = running;
    const Combine how = o_.mode == GenerateMode::ProductOfExperts ? Combine::ProductOfExperts : Combine::Mean;
    const std::vector<double> beta = resolved_beta(o_.beta, running.size());
    const HeadIndices selected = running;

    auto start = Clock::now();
    Tensor logits = model_.forward(ids_tensor(prompt, 0, prompt.size()), std::nullopt, selected, true);
    result_.prefill_tokens = static_cast<int64_t>(prompt.size());
    result_.prefill_seconds = seconds_since(start);
    start = Clock::now();
    std::vector<const float*> rows(running.size()), decide;
    while (true) {
      for (size_t r = 0; r < running.size(); ++r) rows[r] = row(logits, static_cast<int64_t>(r), 0);
      if (o_.mode == GenerateMode::Head)
        decide.assign(1, rows[decider]);
      else
        decide = rows;
      const int64_t token = choose(how, decide, o_.mode == GenerateMode::Head ? std::vector<double>{1.0} : beta);
      if (!emit(describe(token, rows))) break;
      logits = model_.forward(one_token(token), std::nullopt, selected, true);
    }
    result_.decode_seconds = seconds_since(start);
  }

  // Speculative product-of-experts decoding. After the prefill the caches hold the prompt and the
  // prefill's logits give the first proposal's q and P. From then on the caches hold every committed
  // token but the last, `pending`, which each round feeds first: its trunk state joins the verifiers'
  // call, whose row i then scores proposal i.
  void run_speculative(const std::vector<int64_t>& prompt, const std::vector<int64_t>& heads) {
    const int64_t draft = pick_draft_head(o_, heads);
    std::vector<int64_t> verifiers;
    for (int64_t k : heads)
      if (k != draft) verifiers.push_back(k);
    result_.draft_head = draft;
    result_.verifier_heads = verifiers;
    result_.signal_heads = heads;
    const std::vector<double> beta = resolved_beta(o_.beta, verifiers.size());
    const HeadIndices draft_only = std::vector<int64_t>{draft}, verifier_set = verifiers;
    const size_t draft_row = static_cast<size_t>(std::find(heads.begin(), heads.end(), draft) - heads.begin());
    const bool greedy = o_.temperature == 0;

    // The prefill runs exactly as a plain decoding over the verifiers would (the same product shapes,
    // so the same bits): the whole prompt, every head, the last position's logits.
    auto start = Clock::now();
    const Tensor prefilled = model_.forward(ids_tensor(prompt, 0, prompt.size()), std::nullopt, heads, true);
    result_.prefill_tokens = static_cast<int64_t>(prompt.size());
    result_.prefill_seconds = seconds_since(start);
    start = Clock::now();

    int64_t length = static_cast<int64_t>(prompt.size());  // tokens in the caches
    std::optional<int64_t> pending;
    std::vector<Tensor> states, drafts;  // the trunk states fed this round, the draft's logits after each
    std::vector<const float*> q_rows, rows(verifiers.size()), signal_rows(heads.size());
    std::vector<int64_t> proposals;
    if (q_.size() < static_cast<size_t>(o_.gamma)) q_.resize(static_cast<size_t>(o_.gamma));
    bool going = true;
    while (going) {
      const int64_t g = std::min<int64_t>(o_.gamma, o_.max_new_tokens - static_cast<int64_t>(result_.ids.size()));
      states.clear();
      drafts.clear();
      q_rows.clear();
      proposals.clear();
      // Runs `id` through the trunk (keeping its state) and the draft head; the draft's next logits.
      auto feed = [&](int64_t id) {
        states.push_back(model_.forward_trunk(one_token(id)));  // shape: (1, 1, C)
        drafts.push_back(model_.forward_heads(states.back(), draft_only, std::nullopt, true));  // (1, 1, 1, V)
        q_rows.push_back(row(drafts.back(), 0, 0));
      };
      if (pending)
        feed(*pending);
      else
        q_rows.push_back(row(prefilled, static_cast<int64_t>(draft_row), 0));
      // The draft proposes g tokens one at a time.
      for (int64_t i = 0; i < g; ++i) {
        int64_t d = 0;
        if (greedy) {
          d = argmax(q_rows[i], vocab_);
        } else {
          const float* one[] = {q_rows[i]};
          combine_distribution(Combine::Mean, one, {}, vocab_, o_.temperature, q_[i]);
          truncate_top_k_top_p(q_[i], o_.top_k, o_.top_p, order_);
          d = sample_index(q_[i], next_uniform());
        }
        proposals.push_back(d);
        if (i + 1 < g) feed(d);
      }
      result_.drafted += g;
      // The verifiers score every fed position in one call over the kept trunk states.
      Tensor scored;
      if (!states.empty())
        scored = model_.forward_heads(states.size() == 1 ? states[0] : concat(states, 1), verifier_set);  // (n_v, 1, S, V)
      const int64_t shift = pending ? 0 : 1;  // without a pending token, proposal 0 is scored by the prefill
      int64_t accepted = 0;
      bool rejected = false;
      for (int64_t i = 0; i < g && going && !rejected; ++i) {
        for (size_t v = 0; v < verifiers.size(); ++v) {
          const size_t prefill_row = v < draft_row ? v : v + 1;  // the prefill ran every head in `heads` order
          rows[v] = i < shift ? row(prefilled, static_cast<int64_t>(prefill_row), 0)
                              : row(scored, static_cast<int64_t>(v), i - shift);
        }
        combine_distribution(Combine::ProductOfExperts, rows, beta, vocab_, greedy ? 1.0 : o_.temperature, p_);
        const int64_t d = proposals[i];
        int64_t token = d;
        if (greedy) {
          token = argmax(p_);
        } else {
          truncated_ = p_;
          truncate_top_k_top_p(truncated_, o_.top_k, o_.top_p, order_);
          const double ratio = truncated_[d] / q_[i][d];  // q_[i][d] > 0: d was drawn from it
          if (next_uniform() >= std::min(1.0, ratio)) {
            const double mass = residual_distribution(truncated_, q_[i], residual_);
            token = sample_index(mass < kMinResidualMass ? truncated_ : residual_, next_uniform());
          }
        }
        // Every head's argmax at this position: the draft's from its own run, the verifiers' from theirs.
        for (size_t s = 0, v = 0; s < heads.size(); ++s) signal_rows[s] = s == draft_row ? q_rows[i] : rows[v++];
        GeneratedToken t = describe(token, signal_rows);
        t.drafted = token == d;
        if (t.drafted) {
          ++accepted;
        } else {
          t.rejected_draft = d;
          rejected = true;
        }
        going = emit(t);
      }
      result_.accepted += accepted;
      if (!going) break;
      // Committed this round: the accepted proposals and, after a rejection, the replacement. All of
      // them but the last are in the caches (with the old pending token); the last is the new pending.
      const int64_t emitted = accepted + (rejected ? 1 : 0);
      length += (pending ? 1 : 0) + emitted - 1;
      pending = result_.ids.back();
      model_.sync_kv_cache(length);
    }
    result_.decode_seconds = seconds_since(start);
  }

  HydraTransformer& model_;
  const GenerateOptions& o_;
  const std::function<bool(const GeneratedToken&)>& on_token_;
  Generator gen_;
  uint64_t draws_ = 0;
  int64_t vocab_ = 0;
  Tensor token_;
  std::vector<double> p_, truncated_, residual_;
  std::vector<std::vector<double>> q_;
  std::vector<int64_t> order_;
  GenerateResult result_;
};

}  // namespace

GenerateMode parse_generate_mode(const std::string& text, int64_t* head) {
  if (text == "mean") return GenerateMode::Mean;
  if (text == "poe") return GenerateMode::ProductOfExperts;
  if (text == "speculative") return GenerateMode::Speculative;
  if (text.starts_with("head:")) {
    const std::string k = text.substr(5);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(k, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    HYDRA_CHECK(used > 0 && used == k.size() && v >= 0, "--combine '", text,
                "': expected head:K with K a head index (e.g. head:0)");
    if (head) *head = v;
    return GenerateMode::Head;
  }
  HYDRA_CHECK(false, "--combine '", text, "': expected mean, poe, head:K or speculative");
  return GenerateMode::Mean;
}

std::string generate_mode_name(GenerateMode mode, int64_t head) {
  switch (mode) {
    case GenerateMode::Mean: return "mean";
    case GenerateMode::ProductOfExperts: return "poe";
    case GenerateMode::Head: return "head:" + std::to_string(head);
    case GenerateMode::Speculative: return "speculative";
  }
  return "?";
}

void check_generate_options(const GenerateOptions& o, const HydraTransformerConfig& config, int64_t prompt_tokens) {
  const int64_t N = config.n_heads, V = config.base_config.vocab_size;
  auto in_range = [N](int64_t k, const char* flag) {
    HYDRA_CHECK(k >= 0 && k < N, flag, ": head ", k, " is out of range (the model has ", N, " heads: 0 to ", N - 1, ")");
  };
  HYDRA_CHECK(o.max_new_tokens >= 1, "--max-new-tokens must be >= 1, got ", o.max_new_tokens);
  HYDRA_CHECK(std::isfinite(o.temperature) && o.temperature >= 0, "--temperature must be >= 0 (0 is greedy), got ",
              o.temperature);
  HYDRA_CHECK(o.top_k >= 0, "--top-k must be >= 0 (0 turns it off), got ", o.top_k);
  HYDRA_CHECK(o.top_p > 0 && o.top_p <= 1, "--top-p must be in (0, 1] (1 turns it off), got ", o.top_p);
  std::set<int64_t> seen;
  for (int64_t k : o.heads) {
    in_range(k, "--heads");
    HYDRA_CHECK(seen.insert(k).second, "--heads: head ", k, " is listed twice");
  }
  const std::vector<int64_t> heads = resolved_heads(o, N);
  size_t combined = heads.size();
  if (o.mode == GenerateMode::Head) {
    in_range(o.head, "--combine head:K");
    combined = 1;
  }
  if (o.mode == GenerateMode::Speculative) {
    HYDRA_CHECK(heads.size() >= 2, "--combine speculative needs at least two heads (a draft and a verifier); ",
                o.heads.empty() ? "the model has " : "--heads lists ", heads.size());
    if (o.draft_head) {
      in_range(*o.draft_head, "--draft-head");
      HYDRA_CHECK(std::find(heads.begin(), heads.end(), *o.draft_head) != heads.end(), "--draft-head ",
                  *o.draft_head, " is not among --heads ", join(heads));
    }
    HYDRA_CHECK(o.gamma >= 1 && o.gamma <= kMaxGamma, "--gamma must be from 1 to ", kMaxGamma, ", got ", o.gamma);
    combined = heads.size() - 1;
  } else {
    HYDRA_CHECK(!o.draft_head, "--draft-head needs --combine speculative");
  }
  HYDRA_CHECK(o.beta.size() <= 1 || o.beta.size() == combined, "--beta: ", o.beta.size(), " weights for ", combined,
              " combined heads (give one weight, or one per combined head",
              o.mode == GenerateMode::Speculative ? ": the verifiers, every head but the draft)" : ")");
  for (double b : o.beta) HYDRA_CHECK(std::isfinite(b), "--beta: weight ", b, " is not finite");
  HYDRA_CHECK(o.vocab_limit >= 0 && o.vocab_limit <= V, "the tokenizer has ", o.vocab_limit,
              " ids, more than the model's vocabulary of ", V, " (was the model trained with another tokenizer?)");
  HYDRA_CHECK(o.max_context >= 1, "--max-context must be >= 1, got ", o.max_context);
  HYDRA_CHECK(prompt_tokens >= 1, "the prompt is empty: generation needs at least one token to start from");
  HYDRA_CHECK(prompt_tokens + o.max_new_tokens <= o.max_context, "the prompt's ", prompt_tokens,
              " tokens plus --max-new-tokens ", o.max_new_tokens, " = ", prompt_tokens + o.max_new_tokens,
              " exceed the context limit of ", o.max_context, " tokens (--max-context; default ", kDefaultMaxContext,
              ")");
}

GenerateResult generate(HydraTransformer& model, const std::vector<int64_t>& prompt, const GenerateOptions& options,
                        const std::function<bool(const GeneratedToken&)>& on_token) {
  check_generate_options(options, model.config(), static_cast<int64_t>(prompt.size()));
  const int64_t V = model.config().base_config.vocab_size;
  for (size_t i = 0; i < prompt.size(); ++i)
    HYDRA_CHECK(prompt[i] >= 0 && prompt[i] < V, "generate: prompt token ", prompt[i], " at position ", i,
                " is outside the vocabulary [0, ", V, ")");
  NoGradGuard no_grad;
  CacheGuard free_caches{model};
  Decoder decoder(model, options, on_token);
  return decoder.run(prompt);
}

}  // namespace hydra
