// Decoding: the per-position distributions (hydra/sampling.h) against hand-computed values and the
// differentiable combinations of hydra/combine.h; generate() against decoding by full forwards, greedy
// speculative decoding against greedy product-of-experts decoding token for token, the sampled
// distributions (plain and speculative) against the model's own P with a chi-square bound, and the
// model left as it was found (no cache, grad mode on), option errors, determinism across threads.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "hydra/combine.h"
#include "hydra/generate.h"
#include "hydra/sampling.h"
#include "support/op_harness.h"
#include "support/threads.h"
#include "tensor/parallel.h"

using namespace hydra;
using hydra::test::check_error_case;

namespace {

// A small Hydra: 1 trunk block, 2 blocks per head. init_std large enough that the heads' distributions
// are far from uniform (so argmax ties are not an issue and sampling tests have shape).
std::unique_ptr<HydraTransformer> make_model(int64_t vocab, int64_t n_heads, uint64_t seed, double init_std = 0.3) {
  HydraTransformerConfig c;
  c.base_config.vocab_size = vocab;
  c.base_config.d_model = 32;
  c.base_config.n_layers = 3;
  c.base_config.n_heads = 4;
  c.base_config.n_kv_heads = 2;
  c.base_config.head_dim = 8;
  c.base_config.hidden_size = 48;
  c.base_config.rope_theta = 10000;
  c.base_config.init_std = init_std;
  c.n_heads = n_heads;
  c.trunk_layers = 1;
  c.head_layers = 2;
  return c.build("cpu", seed);
}

// Makes every head a copy of head 0 plus noise of standard deviation `noise` (0: identical heads).
void make_heads_similar(HydraTransformer& model, double noise, uint64_t seed) {
  Generator gen(seed);
  auto params = model.named_parameters();
  std::map<std::string, Tensor*> by_name(params.begin(), params.end());
  for (auto& [name, t] : params) {
    if (!name.starts_with("heads.") || name.starts_with("heads.0.")) continue;
    const std::string source = "heads.0" + name.substr(name.find('.', 6));
    const float* from = by_name.at(source)->data<float>();
    float* to = t->data<float>();
    const std::vector<float> eps = gen.normal({t->numel()}, 0.0, noise).to_vector<float>();
    for (int64_t i = 0; i < t->numel(); ++i) to[i] = from[i] + eps[i];
  }
}

// The distribution over the first n ids of logits (n_heads, 1, T, V) at position t, by the tensor
// path (float32 product_of_experts / mean_logits), as doubles.
std::vector<double> reference_distribution(const Tensor& logits, int64_t t, GenerateMode mode, double temperature,
                                           int64_t n) {
  NoGradGuard no_grad;
  Tensor at = contiguous(narrow(logits, 2, t, 1));  // shape: (N, 1, 1, V)
  Tensor logp;
  if (mode == GenerateMode::ProductOfExperts)
    logp = product_of_experts(at, std::vector<double>(static_cast<size_t>(at.size(0)), 1.0), temperature);
  else
    logp = log_softmax(mul_scalar(mean_logits(at), 1.0 / temperature), -1);
  std::vector<double> lp = logp.to_vector<double>();
  std::vector<double> p(lp.begin(), lp.begin() + n);
  double s = 0;
  for (double& v : p) s += (v = std::exp(v));
  for (double& v : p) v /= s;
  return p;
}

// Pearson's chi-square statistic of observed counts against probabilities (cells with tiny expected
// counts pooled into one).
double chi_square(const std::vector<int64_t>& counts, const std::vector<double>& probs, int64_t total, int64_t* cells) {
  double stat = 0, pooled_obs = 0, pooled_exp = 0;
  *cells = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double e = probs[i] * static_cast<double>(total);
    if (e < 5) {
      pooled_obs += static_cast<double>(counts[i]);
      pooled_exp += e;
      continue;
    }
    stat += (static_cast<double>(counts[i]) - e) * (static_cast<double>(counts[i]) - e) / e;
    ++*cells;
  }
  if (pooled_exp > 0) {
    stat += (pooled_obs - pooled_exp) * (pooled_obs - pooled_exp) / pooled_exp;
    ++*cells;
  }
  return stat;
}

// The 99.9th percentile of chi-square with `df` degrees of freedom (Wilson–Hilferty; within 1% for df >= 3).
double chi_square_bound(int64_t df) {
  const double k = static_cast<double>(df), z = 3.0902;  // the standard normal's 99.9th percentile
  const double c = 1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k));
  return k * c * c * c;
}

void check_probs(const std::vector<double>& got, std::initializer_list<double> want) {
  REQUIRE(got.size() == want.size());
  size_t i = 0;
  for (double w : want) {
    CHECK_MESSAGE(got[i] == doctest::Approx(w).epsilon(1e-12), "id ", i);
    ++i;
  }
}

GenerateOptions greedy(GenerateMode mode, int64_t max_new) {
  GenerateOptions o;
  o.mode = mode;
  o.temperature = 0;
  o.max_new_tokens = max_new;
  return o;
}

}  // namespace

TEST_CASE("sampling: combined distributions match the differentiable combinations") {
  auto model = make_model(40, 3, 7);
  NoGradGuard no_grad;
  const Tensor logits = model->forward(from_vector(std::vector<int64_t>{3, 1, 4, 1, 5}, {1, 5}));  // (3, 1, 5, 40)
  const float* base = logits.data<float>();
  std::vector<const float*> rows;
  for (int64_t h = 0; h < 3; ++h) rows.push_back(base + (h * 5 + 4) * 40);
  std::vector<double> p;
  for (double temperature : {1.0, 0.6, 1.7}) {
    INFO("temperature ", temperature);
    for (GenerateMode mode : {GenerateMode::Mean, GenerateMode::ProductOfExperts}) {
      const Combine how = mode == GenerateMode::Mean ? Combine::Mean : Combine::ProductOfExperts;
      combine_distribution(how, rows, std::vector<double>(3, 1.0), 40, temperature, p);
      const std::vector<double> want = reference_distribution(logits, 4, mode, temperature, 40);
      for (size_t i = 0; i < p.size(); ++i) CHECK(p[i] == doctest::Approx(want[i]).epsilon(1e-5));
      // Restricted to the first 25 ids: the full distribution renormalised over them.
      combine_distribution(how, rows, std::vector<double>(3, 1.0), 25, temperature, p);
      double kept = 0;
      for (int64_t i = 0; i < 25; ++i) kept += want[i];
      REQUIRE(p.size() == 25);
      for (size_t i = 0; i < p.size(); ++i) CHECK(p[i] == doctest::Approx(want[i] / kept).epsilon(1e-5));
    }
  }
  // PoE weights: β = (2, 0, 1) is softmax(2·logp_0 + logp_2).
  combine_distribution(Combine::ProductOfExperts, rows, std::vector<double>{2, 0, 1}, 40, 1.0, p);
  Tensor two = contiguous(narrow(logits, 2, 4, 1));
  const std::vector<double> want =
      product_of_experts(two, std::vector<double>{2, 0, 1}, 1.0).to_vector<double>();
  for (size_t i = 0; i < p.size(); ++i) CHECK(p[i] == doctest::Approx(std::exp(want[i])).epsilon(1e-5));
}

TEST_CASE("sampling: truncation, argmax, draws, residual and the trust signals by hand") {
  std::vector<int64_t> order;
  std::vector<double> p = {0.1, 0.4, 0.2, 0.3};
  truncate_top_k_top_p(p, 2, 1.0, order);
  check_probs(p, {0, 0.4 / 0.7, 0, 0.3 / 0.7});
  p = {0.1, 0.4, 0.2, 0.3};
  truncate_top_k_top_p(p, 0, 0.6, order);  // 0.4 + 0.3 = 0.7 >= 0.6: two ids
  check_probs(p, {0, 0.4 / 0.7, 0, 0.3 / 0.7});
  p = {0.1, 0.4, 0.2, 0.3};
  truncate_top_k_top_p(p, 0, 0.4, order);  // the top id alone reaches 0.4
  check_probs(p, {0, 1, 0, 0});
  p = {0.1, 0.4, 0.2, 0.3};
  truncate_top_k_top_p(p, 3, 0.75, order);  // top-3 keeps 0.9 of the mass; 0.4 + 0.3 = 0.7 >= 0.75 · 0.9
  check_probs(p, {0, 0.4 / 0.7, 0, 0.3 / 0.7});
  p = {0.25, 0.25, 0.25, 0.25};
  truncate_top_k_top_p(p, 2, 1.0, order);  // ties: the lower ids
  check_probs(p, {0.5, 0.5, 0.0, 0.0});
  p = {0.1, 0.4, 0.2, 0.3};
  truncate_top_k_top_p(p, 0, 1.0, order);  // both off: unchanged
  check_probs(p, {0.1, 0.4, 0.2, 0.3});

  CHECK(argmax(std::vector<double>{0.2, 0.4, 0.4, 0.0}) == 1);
  const float logits[] = {-1.0f, 3.0f, 3.0f, 2.0f};
  CHECK(argmax(logits, 4) == 1);
  CHECK(argmax(logits, 1) == 0);

  const std::vector<double> q = {0, 0.5, 0, 0.5};
  CHECK(sample_index(q, 0.0) == 1);
  CHECK(sample_index(q, 0.4999) == 1);
  CHECK(sample_index(q, 0.5) == 3);
  CHECK(sample_index(q, 0.999999) == 3);
  CHECK(sample_index(std::vector<double>{0, 2, 0, 6}, 0.3) == 3);  // unnormalised: 0.3 · 8 = 2.4 > 2

  std::vector<double> r;
  CHECK(residual_distribution(std::vector<double>{0.5, 0.3, 0.2}, std::vector<double>{0.2, 0.6, 0.2}, r) ==
        doctest::Approx(0.3));
  CHECK(r == std::vector<double>{1, 0, 0});
  CHECK(residual_distribution(std::vector<double>{0.5, 0.5}, std::vector<double>{0.5, 0.5}, r) == 0);

  CHECK(entropy(std::vector<double>{0.25, 0.25, 0.25, 0.25}) == doctest::Approx(std::log(4.0)));
  CHECK(entropy(std::vector<double>{0, 1, 0}) == 0);
  CHECK(top_two_margin(std::vector<double>{0.1, 0.6, 0.3}) == doctest::Approx(0.3));
  CHECK(top_two_margin(std::vector<double>{0, 1}) == 1);
  CHECK(vote_margin(std::vector<int64_t>{5, 5, 7}, 5) == 1);
  CHECK(vote_margin(std::vector<int64_t>{5, 5, 7}, 7) == -1);
  CHECK(vote_margin(std::vector<int64_t>{5, 6, 7}, 5) == 0);
  CHECK(vote_margin(std::vector<int64_t>{5, 6, 6, 7}, 9) == -2);
  CHECK(vote_margin(std::vector<int64_t>{5, 5}, 5) == 2);

  // Uniform draws: in [0, 1), a function of (seed, index, lane) only.
  const Generator gen(11);
  double lo = 1, hi = 0, mean = 0;
  for (uint64_t i = 0; i < 10000; ++i) {
    const double u = uniform01(gen, i, 0);
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    mean += u / 10000;
  }
  CHECK(lo >= 0);
  CHECK(hi < 1);
  CHECK(mean == doctest::Approx(0.5).epsilon(0.02));
  CHECK(uniform01(gen, 3, 0) == uniform01(Generator(11), 3, 0));
  CHECK(uniform01(gen, 3, 0) != uniform01(gen, 3, 1));
}

// The exp of softmax and the log of entropy run on every thread; each value is the one-thread loop's,
// and the sums stay in id order, so the results equal the plain sequential formulas bit for bit.
TEST_CASE("combine_distribution and entropy over gpt2's vocabulary equal the one-loop formulas, at 1 and 2 threads") {
  const int64_t V = 50304;
  const std::vector<float> a = Generator(31).normal({V}, 0, 3).to_vector<float>();
  const std::vector<float> b = Generator(32).normal({V}, 0, 3).to_vector<float>();
  // The sequential formulas: the mean of the logits, then softmax with its sum in id order.
  std::vector<double> want(V);
  for (int64_t i = 0; i < V; ++i) want[i] = (static_cast<double>(a[i]) + static_cast<double>(b[i])) * (1.0 / 2.0);
  double m = -INFINITY, sum = 0;
  for (double v : want) m = std::max(m, v);
  for (double& v : want) {
    v = std::exp(v - m);
    sum += v;
  }
  for (double& v : want) v *= 1.0 / sum;
  double want_h = 0;
  for (double p : want)
    if (p > 0) want_h -= p * std::log(p);
  for (int threads : {1, 2}) {
    test::ScopedThreads scope(threads);
    INFO("threads ", threads);
    std::vector<double> p;
    const std::vector<const float*> rows{a.data(), b.data()};
    combine_distribution(Combine::Mean, rows, {}, V, 1.0, p);
    REQUIRE(p.size() == want.size());
    CHECK(std::memcmp(p.data(), want.data(), V * sizeof(double)) == 0);
    const double h = entropy(p);
    CHECK(std::memcmp(&h, &want_h, sizeof(double)) == 0);
    CHECK(h > 1.0);  // the case is not degenerate: far from one-hot
  }
}

TEST_CASE("generate: greedy decoding equals decoding by full forwards, token for token") {
  // Prompt + new tokens stay within the few-row kernel (16 rows), where a full forward's rows have the
  // same bits as the cached decoding's: the argmaxes must agree exactly.
  auto model = make_model(48, 3, 3);
  const std::vector<int64_t> prompt = {5, 9, 2, 44, 17};
  for (GenerateMode mode : {GenerateMode::Mean, GenerateMode::ProductOfExperts, GenerateMode::Head}) {
    GenerateOptions o = greedy(mode, 11);
    o.head = 2;
    o.heads = {0, 2};
    o.vocab_limit = 40;
    INFO("mode ", generate_mode_name(mode, o.head));
    const GenerateResult r = generate(*model, prompt, o);
    REQUIRE(r.ids.size() == 11);
    CHECK(r.stop_reason == "length");
    std::vector<int64_t> seq = prompt;
    NoGradGuard no_grad;
    for (size_t step = 0; step < r.ids.size(); ++step) {
      const std::vector<int64_t> heads = mode == GenerateMode::Head ? std::vector<int64_t>{2} : o.heads;
      const Tensor logits = model->forward(from_vector(seq, {1, static_cast<int64_t>(seq.size())}), std::nullopt, heads);
      const std::vector<double> p = reference_distribution(
          logits, static_cast<int64_t>(seq.size()) - 1,
          mode == GenerateMode::ProductOfExperts ? GenerateMode::ProductOfExperts : GenerateMode::Mean, 1.0, 40);
      const int64_t want = argmax(p);
      CHECK_MESSAGE(r.ids[step] == want, "step ", step);
      seq.push_back(want);
    }
  }
}

TEST_CASE("generate: greedy speculative decoding equals greedy product-of-experts over the verifiers") {
  // Three kinds of heads: unrelated (almost every proposal rejected), near copies (a mix) and exact
  // copies (every proposal accepted). Prompts short and long (past the few-row kernel: the prefill
  // then runs through BLAS, with the same shape in both decodings).
  struct Kind {
    const char* name;
    double noise;  // < 0: unrelated heads
  };
  std::vector<int64_t> long_prompt;
  for (int64_t i = 0; i < 37; ++i) long_prompt.push_back((i * 13 + 5) % 64);
  const std::vector<std::vector<int64_t>> prompts = {{7}, {1, 2, 3, 4, 5, 6}, long_prompt};
  for (const Kind& kind : {Kind{"unrelated", -1}, Kind{"near copies", 0.02}, Kind{"copies", 0}}) {
    auto model = make_model(64, 4, 21);
    if (kind.noise >= 0) make_heads_similar(*model, kind.noise, 5);
    for (size_t pi = 0; pi < prompts.size(); ++pi)
      for (int64_t draft : {0, 2}) {
        GenerateOptions reference = greedy(GenerateMode::ProductOfExperts, 24);
        for (int64_t k = 0; k < 4; ++k)
          if (k != draft) reference.heads.push_back(k);
        const std::vector<int64_t> want = generate(*model, prompts[pi], reference).ids;
        for (int64_t gamma : {1, 2, 3, 5, 16}) {
          INFO(kind.name, ", prompt ", pi, ", draft ", draft, ", gamma ", gamma);
          GenerateOptions o = greedy(GenerateMode::Speculative, 24);
          o.draft_head = draft;
          o.gamma = gamma;
          const GenerateResult r = generate(*model, prompts[pi], o);
          CHECK(r.ids == want);
          CHECK(r.verifier_heads == reference.heads);
          CHECK(r.accepted <= r.drafted);
          if (kind.noise == 0) CHECK(r.acceptance_rate() == 1.0);  // identical heads always agree
        }
      }
  }
}

TEST_CASE("generate: near-copy heads accept some proposals and reject others") {
  auto model = make_model(64, 3, 21);
  make_heads_similar(*model, 0.02, 5);
  GenerateOptions o = greedy(GenerateMode::Speculative, 40);
  o.draft_head = 0;
  o.gamma = 4;
  const GenerateResult r = generate(*model, {1, 2, 3}, o);
  INFO("acceptance ", r.acceptance_rate());
  CHECK(r.acceptance_rate() > 0.2);
  CHECK(r.acceptance_rate() < 1.0);
}

TEST_CASE("generate: sampled tokens follow the combined distribution (chi-square)") {
  // One step from a fixed prompt, many seeds: the counts of each id against P computed by the tensor
  // path. Plain sampling (temperature, top-k) and one speculative step (gamma 1 and the second token of
  // gamma 2, whose distribution is P(x2 | x1) averaged over x1).
  // NOTE: fewer draws under the sanitizers, same bound: there each draw is a whole generate() call at
  // about 27 ms (40x Release; much of it the instrumented allocator), and 2 x 3000 of them were the
  // longest test case of the CI run (160 s). The instrumented run looks for memory errors, which 600
  // draws exercise as well; the Release run keeps the statistical power of 3000.
  const int64_t V = 6;
#ifdef HYDRA_SANITIZE
  const int64_t runs = 600;
#else
  const int64_t runs = 3000;
#endif
  auto model = make_model(V, 3, 4, 0.5);
  const std::vector<int64_t> prompt = {1, 4, 2};
  NoGradGuard no_grad;
  const Tensor logits = model->forward(from_vector(prompt, {1, 3}));
  SUBCASE("mean at temperature 1.3") {
    const std::vector<double> p = reference_distribution(logits, 2, GenerateMode::Mean, 1.3, V);
    std::vector<int64_t> counts(V);
    for (int64_t s = 0; s < runs; ++s) {
      GenerateOptions o;
      o.mode = GenerateMode::Mean;
      o.temperature = 1.3;
      o.max_new_tokens = 1;
      o.seed = static_cast<uint64_t>(s);
      ++counts[generate(*model, prompt, o).ids[0]];
    }
    int64_t cells = 0;
    const double stat = chi_square(counts, p, runs, &cells);
    INFO("chi-square ", stat, " over ", cells, " cells");
    CHECK(stat < chi_square_bound(cells - 1));
  }
  SUBCASE("speculative: one round of gamma 2, both tokens") {
    // P for the first token, and for the second given each first.
    const std::vector<int64_t> verifiers = {1, 2};
    const Tensor v_logits = model->forward(from_vector(prompt, {1, 3}), std::nullopt, verifiers);
    const std::vector<double> p1 = reference_distribution(v_logits, 2, GenerateMode::ProductOfExperts, 1.0, V);
    std::vector<double> joint(V * V);
    for (int64_t a = 0; a < V; ++a) {
      std::vector<int64_t> seq = prompt;
      seq.push_back(a);
      const Tensor l2 = model->forward(from_vector(seq, {1, 4}), std::nullopt, verifiers);
      const std::vector<double> p2 = reference_distribution(l2, 3, GenerateMode::ProductOfExperts, 1.0, V);
      for (int64_t b = 0; b < V; ++b) joint[a * V + b] = p1[a] * p2[b];
    }
    std::vector<int64_t> counts(V * V);
    int64_t accepted = 0, drafted = 0;
    for (int64_t s = 0; s < runs; ++s) {
      GenerateOptions o;
      o.mode = GenerateMode::Speculative;
      o.draft_head = 0;
      o.gamma = 2;
      o.temperature = 1.0;
      o.max_new_tokens = 2;
      o.seed = static_cast<uint64_t>(s);
      const GenerateResult r = generate(*model, prompt, o);
      REQUIRE(r.ids.size() == 2);
      ++counts[r.ids[0] * V + r.ids[1]];
      accepted += r.accepted;
      drafted += r.drafted;
    }
    int64_t cells = 0;
    const double stat = chi_square(counts, joint, runs, &cells);
    INFO("chi-square ", stat, " over ", cells, " cells; acceptance ", static_cast<double>(accepted) / drafted);
    CHECK(stat < chi_square_bound(cells - 1));
    CHECK(accepted > 0);  // both branches (accept and residual) ran
    CHECK(accepted < drafted);
  }
}

TEST_CASE("generate: padded ids are never drawn; top-k 1 is greedy; the stop id ends generation") {
  auto model = make_model(64, 2, 9, 0.5);
  GenerateOptions o;
  o.temperature = 3.0;  // flat: every allowed id is likely
  o.max_new_tokens = 200;
  o.vocab_limit = 10;
  const GenerateResult r = generate(*model, {1}, o);
  for (int64_t id : r.ids) CHECK(id < 10);
  std::set<int64_t> distinct(r.ids.begin(), r.ids.end());
  CHECK(distinct.size() > 5);

  o.top_k = 1;
  o.max_new_tokens = 12;
  o.vocab_limit = 0;
  const GenerateResult k1 = generate(*model, {1, 2}, o);
  CHECK(k1.ids == generate(*model, {1, 2}, greedy(GenerateMode::Mean, 12)).ids);

  GenerateOptions s = greedy(GenerateMode::Mean, 12);
  s.stop_id = k1.ids[4];
  const size_t first = static_cast<size_t>(std::find(k1.ids.begin(), k1.ids.end(), *s.stop_id) - k1.ids.begin());
  const GenerateResult stopped = generate(*model, {1, 2}, s);
  CHECK(stopped.stop_reason == "stop_id");
  CHECK(stopped.ids == std::vector<int64_t>(k1.ids.begin(), k1.ids.begin() + static_cast<std::ptrdiff_t>(first) + 1));

  int64_t seen = 0;
  const GenerateResult cut = generate(*model, {1, 2}, greedy(GenerateMode::Mean, 12), [&](const GeneratedToken&) {
    return ++seen < 3;
  });
  CHECK(cut.ids.size() == 3);
  CHECK(cut.stop_reason == "callback");
}

TEST_CASE("generate: trust signals of each token") {
  auto model = make_model(32, 3, 2);
  GenerateOptions o = greedy(GenerateMode::ProductOfExperts, 6);
  std::vector<GeneratedToken> tokens;
  generate(*model, {3, 1}, o, [&](const GeneratedToken& t) {
    tokens.push_back(t);
    return true;
  });
  REQUIRE(tokens.size() == 6);
  NoGradGuard no_grad;
  const Tensor logits = model->forward(from_vector(std::vector<int64_t>{3, 1}, {1, 2}));
  const std::vector<double> p = reference_distribution(logits, 1, GenerateMode::ProductOfExperts, 1.0, 32);
  const GeneratedToken& t = tokens[0];
  CHECK(t.id == argmax(p));
  CHECK(t.prob == doctest::Approx(p[t.id]).epsilon(1e-5));
  CHECK(t.entropy == doctest::Approx(entropy(p)).epsilon(1e-5));
  CHECK(t.top_margin == doctest::Approx(top_two_margin(p)).epsilon(1e-4));
  REQUIRE(t.head_argmax.size() == 3);
  for (int64_t h = 0; h < 3; ++h) CHECK(t.head_argmax[h] == argmax(logits.data<float>() + (h * 2 + 1) * 32, 32));
  CHECK(t.vote_margin == vote_margin(t.head_argmax, t.id));
}

TEST_CASE("generate: the model is left as it was found; sampling is the same at 1 and 2 threads") {
  auto model = make_model(32, 3, 2);
  GenerateOptions o;
  o.mode = GenerateMode::Speculative;
  o.max_new_tokens = 20;
  o.seed = 3;
  const int previous_threads = num_threads();
  set_num_threads(1);
  const GenerateResult one = generate(*model, {1, 2, 3}, o);
  set_num_threads(2);
  const GenerateResult two = generate(*model, {1, 2, 3}, o);
  set_num_threads(previous_threads);
  CHECK(one.ids == two.ids);
  CHECK(one.draft_head == two.draft_head);
  CHECK(grad_mode_enabled());
  for (const auto& block : model->trunk.blocks) CHECK(!block->attention.has_kv_cache());
  for (const auto& head : model->heads)
    for (const auto& block : head->blocks) CHECK(!block->attention.has_kv_cache());
  // Also after a failure inside the loop (the callback throws).
  CHECK_THROWS_AS(generate(*model, {1}, o, [](const GeneratedToken&) -> bool { throw Error("stop"); }), Error);
  for (const auto& block : model->trunk.blocks) CHECK(!block->attention.has_kv_cache());
  CHECK(grad_mode_enabled());
  // A training forward works again (no cache refuses the graph).
  model->set_trainable("*", true);
  Tensor loss = sum(model->forward(from_vector(std::vector<int64_t>{1, 2}, {1, 2})));
  CHECK(loss.requires_grad());
}

TEST_CASE("generate: bad options are errors naming the flag") {
  auto model = make_model(32, 3, 2);
  auto run = [&](GenerateOptions o, std::vector<int64_t> prompt = {1, 2}) {
    return [&model, o, prompt] { generate(*model, prompt, o); };
  };
  GenerateOptions o;
  auto with = [&](auto change) {
    GenerateOptions c = o;
    change(c);
    return c;
  };
  check_error_case({"head out of range", run(with([](auto& c) { c.mode = GenerateMode::Head; c.head = 3; })),
                    {"--combine head:K", "head 3", "3 heads"}});
  check_error_case({"--heads out of range", run(with([](auto& c) { c.heads = {0, 5}; })), {"--heads", "head 5"}});
  check_error_case({"--heads twice", run(with([](auto& c) { c.heads = {1, 1}; })), {"--heads", "twice"}});
  check_error_case({"temperature < 0", run(with([](auto& c) { c.temperature = -0.5; })), {"--temperature", "-0.5"}});
  check_error_case({"top-p 0", run(with([](auto& c) { c.top_p = 0; })), {"--top-p", "(0, 1]"}});
  check_error_case({"top-p > 1", run(with([](auto& c) { c.top_p = 1.5; })), {"--top-p", "1.5"}});
  check_error_case({"top-k < 0", run(with([](auto& c) { c.top_k = -1; })), {"--top-k"}});
  check_error_case({"too long", run(with([](auto& c) { c.max_context = 10; c.max_new_tokens = 9; })),
                    {"2 tokens", "--max-new-tokens 9", "11", "context limit of 10"}});
  check_error_case({"empty prompt", run(o, {}), {"prompt is empty"}});
  check_error_case({"prompt id", run(o, {1, 32}), {"token 32", "position 1", "[0, 32)"}});
  check_error_case({"tokenizer larger", run(with([](auto& c) { c.vocab_limit = 33; })), {"33 ids", "vocabulary of 32"}});
  check_error_case({"speculative, one head", run(with([](auto& c) { c.mode = GenerateMode::Speculative; c.heads = {1}; })),
                    {"at least two heads"}});
  check_error_case({"draft not in heads",
                    run(with([](auto& c) { c.mode = GenerateMode::Speculative; c.heads = {0, 1}; c.draft_head = 2; })),
                    {"--draft-head 2", "0,1"}});
  check_error_case({"draft without speculative", run(with([](auto& c) { c.draft_head = 1; })), {"--draft-head"}});
  check_error_case({"gamma", run(with([](auto& c) { c.mode = GenerateMode::Speculative; c.gamma = 17; })),
                    {"--gamma", "16", "17"}});
  check_error_case({"beta count", run(with([](auto& c) { c.mode = GenerateMode::ProductOfExperts; c.beta = {1, 2}; })),
                    {"--beta", "2 weights", "3 combined heads"}});
  check_error_case({"combine", [] { parse_generate_mode("median", nullptr); }, {"--combine", "median"}});
  check_error_case({"combine head", [] { parse_generate_mode("head:x", nullptr); }, {"head:K"}});
  int64_t k = -1;
  CHECK(parse_generate_mode("head:2", &k) == GenerateMode::Head);
  CHECK(k == 2);
  CHECK(generate_mode_name(GenerateMode::Head, 2) == "head:2");
}
