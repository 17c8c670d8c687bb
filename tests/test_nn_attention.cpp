// causal_attention (the fused flash-style op) and the Attention layer with its KV cache:
//   - memory: the forward never allocates a T×T buffer per head (this case runs first: the allocator's
//     peak is a process-wide high-water mark);
//   - fused vs reference, forward and the gradients of q, k and v, float64 and float32, over odd sizes,
//     GQA, several blocks, q_start > 0 with Tk > Tq; gradcheck; inputs read in place through strides;
//   - bit-identical results for 1 and 2 threads;
//   - the layer: its math against the references, KV-cached decoding against the full forward,
//     rollback / sync / reset, and the cache's errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "autograd/gradcheck.h"
#include "nn/attention.h"
#include "nn/attention_core.h"
#include "nn/init.h"
#include "nn/linear.h"
#include "nn/rms_norm.h"
#include "support/op_harness.h"
#include "support/threads.h"
#include "tensor/allocator.h"
#include "tensor/copy.h"
#include "tensor/parallel.h"

using namespace hydra;
using namespace hydra::test;
using hydra::nn::causal_attention;
using hydra::nn::causal_attention_reference;

namespace {

// Largest |got - want| / max(1, |want|).
double max_rel_diff(const Tensor& got, const Tensor& want) {
  REQUIRE(got.shape() == want.shape());
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double err = std::abs(g[i] - w[i]) / std::max(1.0, std::abs(w[i]));
    worst = std::isnan(err) ? INFINITY : std::max(worst, err);
  }
  return worst;
}

struct Config {
  int64_t B, Tq, H, Hkv, D, q_start, Tk;
};

std::string describe(const Config& c) {
  return "B " + std::to_string(c.B) + " Tq " + std::to_string(c.Tq) + " H " + std::to_string(c.H) + " Hkv " +
         std::to_string(c.Hkv) + " D " + std::to_string(c.D) + " q_start " + std::to_string(c.q_start) + " Tk " +
         std::to_string(c.Tk);
}

// Random q, k, v and an upstream gradient for a config; `spread` scales q and k (larger = peakier softmax).
struct Problem {
  Tensor q, k, v, dout;
};
Problem make_problem(const Config& c, DType dtype, uint64_t seed, double spread = 1.0) {
  Generator gen(seed);
  return {gen.normal({c.B, c.Tq, c.H, c.D}, 0, spread, dtype), gen.normal({c.B, c.Tk, c.Hkv, c.D}, 0, spread, dtype),
          gen.normal({c.B, c.Tk, c.Hkv, c.D}, 0, 1, dtype), gen.normal({c.B, c.Tq, c.H, c.D}, 0, 1, dtype)};
}

// out, dq, dk, dv of one attention function on fresh leaves.
using AttentionFn = Tensor (*)(const Tensor&, const Tensor&, const Tensor&, int64_t, double);
std::vector<Tensor> run(AttentionFn f, const Problem& p, int64_t q_start) {
  Tensor q = p.q.detach().set_requires_grad(), k = p.k.detach().set_requires_grad(),
         v = p.v.detach().set_requires_grad();
  Tensor out = f(q, k, v, q_start, 1.0 / std::sqrt(static_cast<double>(p.q.size(3))));
  out.backward(p.dout);
  return {out, q.grad(), k.grad(), v.grad()};
}

void check_against_reference(const Config& c, DType dtype, double tol, double spread = 1.0) {
  Problem p = make_problem(c, dtype, 42, spread);
  std::vector<Tensor> got = run(causal_attention, p, c.q_start);
  std::vector<Tensor> want = run(causal_attention_reference, p, c.q_start);
  const char* names[] = {"out", "dq", "dk", "dv"};
  for (int i = 0; i < 4; ++i) {
    INFO(describe(c), " ", std::string(dtype_name(dtype)), " spread ", spread, ": ", std::string(names[i]));
    CHECK(max_rel_diff(got[i], want[i]) <= tol);
  }
}

}  // namespace

TEST_CASE("causal_attention never allocates a T x T buffer per head (forward and backward)") {
  const int64_t B = 1, T = 2048, H = 4, D = 32;
  const double per_head_matrix = static_cast<double>(T) * T * sizeof(float);  // 16 MiB
  Problem p = make_problem({B, T, H, H, D, 0, T}, DType::Float32, 1);
  Tensor q = p.q.detach().set_requires_grad(), k = p.k.detach().set_requires_grad(),
         v = p.v.detach().set_requires_grad();
  const AllocatorStats before = allocator_stats();
  // The peak is process-wide: it must not be above the current use already, or the check sees nothing.
  REQUIRE(before.peak_in_use_bytes - before.in_use_bytes < per_head_matrix / 16);
  Tensor out = causal_attention(q, k, v, 0, 1.0 / std::sqrt(32.0));
  const AllocatorStats after_forward = allocator_stats();
  // The output (1 MiB) and the logsumexp (32 KiB): linear in T.
  const double io = static_cast<double>(B * T * H * D * sizeof(float));
  CHECK(static_cast<double>(after_forward.peak_in_use_bytes - before.in_use_bytes) <= io + 64 * 1024);
  out.backward(p.dout);
  const AllocatorStats after_backward = allocator_stats();
  // The output, dq, dk, dv and the engine's copies of them into the leaves' .grad (Δ is 32 KiB): 7 MiB,
  // linear in T, nowhere near one head's T×T (16 MiB), let alone B·H of them.
  CHECK(static_cast<double>(after_backward.peak_in_use_bytes - before.in_use_bytes) <= 7 * io + 64 * 1024);
  CHECK(static_cast<double>(after_backward.peak_in_use_bytes - before.in_use_bytes) < per_head_matrix / 2);
}

TEST_CASE("causal_attention matches its reference: out, dq, dk, dv in float64 and float32") {
  const std::vector<Config> configs = {
      {2, 7, 3, 3, 16, 0, 7},      // odd sizes
      {1, 1, 1, 1, 1, 0, 1},       // everything 1
      {3, 5, 2, 2, 3, 0, 5},       // odd head_dim
      {2, 9, 4, 2, 8, 0, 9},       // GQA, 2 query heads per kv head
      {2, 9, 4, 1, 8, 0, 9},       // multi-query: one kv head for all
      {1, 130, 2, 1, 16, 0, 130},  // three query and key blocks of 64, the last one partial
      {2, 128, 2, 2, 8, 0, 128},   // an exact multiple of the block size
      {2, 5, 4, 2, 8, 3, 8},       // q_start > 0: Tk = q_start + Tq
      {1, 70, 2, 2, 16, 60, 130},  // q_start > 0, queries spanning two blocks, keys three
      {1, 3, 2, 2, 8, 2, 9},       // Tk > q_start + Tq: the last keys are never seen (zero grads)
      {2, 1, 4, 2, 16, 129, 130},  // one decoding step deep in a cache
  };
  for (const Config& c : configs) {
    check_against_reference(c, DType::Float64, 1e-12);
    check_against_reference(c, DType::Float32, 1e-5);
  }
  // Peaky softmax (logits ~ ±50): the online rescaling has to be right, not just harmless.
  check_against_reference({2, 130, 2, 1, 8, 0, 130}, DType::Float64, 1e-12, 4.0);
  check_against_reference({2, 130, 2, 1, 8, 0, 130}, DType::Float32, 1e-5, 4.0);
}

TEST_CASE("causal_attention: keys past every query get exactly zero gradient") {
  Problem p = make_problem({1, 3, 2, 2, 8, 2, 9}, DType::Float64, 5);
  std::vector<Tensor> g = run(causal_attention, p, 2);
  // Queries at positions 2, 3, 4 see keys 0..4; keys 5..8 never contribute.
  for (int i : {2, 3})
    for (double x : narrow(g[i], 1, 5, 4).to_vector<double>()) CHECK(x == 0.0);
}

TEST_CASE("causal_attention through the op harness: gradcheck, float32, non-contiguous inputs") {
  const std::vector<Config> configs = {{1, 3, 2, 1, 2, 0, 3}, {2, 2, 2, 2, 3, 1, 4}, {1, 4, 3, 3, 2, 0, 4}};
  for (const Config& c : configs) {
    const double scale = 0.7;
    OpCase oc{"causal_attention " + describe(c),
              {{{c.B, c.Tq, c.H, c.D}}, {{c.B, c.Tk, c.Hkv, c.D}}, {{c.B, c.Tk, c.Hkv, c.D}}},
              [=](const Inputs& x) { return causal_attention(x[0], x[1], x[2], c.q_start, scale); },
              [=](const Inputs& x) { return causal_attention_reference(x[0], x[1], x[2], c.q_start, scale); }};
    oc.forward_tol = 1e-13;
    oc.float32_tol = 2e-6;
    oc.layout_exact = false;  // a transposed layout is copied to dense rows first: BLAS may round differently
    check_op_case(oc);
  }
}

TEST_CASE("causal_attention reads strided inputs in place with the same result") {
  // q as a (B, H, T, D) tensor permuted to (B, T, H, D), k and v as the first rows of a longer cache.
  const int64_t B = 2, T = 70, H = 4, Hkv = 2, D = 16;
  Problem p = make_problem({B, T, H, Hkv, D, 0, T}, DType::Float32, 9);
  Tensor q_bhtd = contiguous(permute(p.q, {0, 2, 1, 3}));  // shape: (B, H, T, D)
  Tensor q_view = permute(q_bhtd, {0, 2, 1, 3});            // shape: (B, T, H, D), strided
  Tensor cache = zeros({B, 100, Hkv, D});
  kernels::copy_into(narrow(cache, 1, 0, T), p.k);
  Tensor k_view = narrow(cache, 1, 0, T);  // shape: (B, T, Hkv, D), batch stride 100·Hkv·D
  REQUIRE(!q_view.is_contiguous());
  REQUIRE(!k_view.is_contiguous());
  Tensor dense = causal_attention(p.q, p.k, p.v, 0, 0.25);
  Tensor strided = causal_attention(q_view, k_view, p.v, 0, 0.25);
  CHECK(bit_identical(dense, strided));
}

TEST_CASE("causal_attention is bit-identical for 1 and 2 threads, forward and backward") {
  for (int64_t Hkv : {4, 2}) {
    INFO("Hkv ", Hkv);
    Problem p = make_problem({2, 300, 4, Hkv, 32, 0, 300}, DType::Float32, 17);
    expect_thread_invariant([&] { return run(causal_attention, p, 0); }, {"out", "dq", "dk", "dv"});
  }
}

TEST_CASE("causal_attention errors name the op and the shapes") {
  Tensor q = zeros({2, 3, 4, 8}), k = zeros({2, 3, 2, 8});
  std::vector<ErrorCase> cases = {
      {"rank", [&] { causal_attention(zeros({3, 4, 8}), k, k, 0, 1.0); }, {"causal_attention", "[3, 4, 8]"}},
      {"heads", [&] { causal_attention(zeros({2, 3, 3, 8}), k, k, 0, 1.0); },
       {"causal_attention", "3", "multiple", "[2, 3, 2, 8]"}},
      {"head_dim", [&] { causal_attention(q, zeros({2, 3, 2, 4}), zeros({2, 3, 2, 4}), 0, 1.0); },
       {"causal_attention", "[2, 3, 4, 8]", "[2, 3, 2, 4]"}},
      {"batch", [&] { causal_attention(q, zeros({1, 3, 2, 8}), zeros({1, 3, 2, 8}), 0, 1.0); },
       {"causal_attention", "[2, 3, 4, 8]", "[1, 3, 2, 8]"}},
      {"k vs v", [&] { causal_attention(q, k, zeros({2, 4, 2, 8}), 0, 1.0); },
       {"causal_attention", "[2, 3, 2, 8]", "[2, 4, 2, 8]"}},
      {"too few keys", [&] { causal_attention(q, k, k, 1, 1.0); }, {"causal_attention", "q_start = 1", "[2, 3, 2, 8]"}},
      {"dtype", [&] { causal_attention(q, zeros({2, 3, 2, 8}, DType::Float64), k, 0, 1.0); },
       {"causal_attention", "float32", "float64"}},
  };
  for (const ErrorCase& c : cases) check_error_case(c);
}

// ---- the Attention layer ----

namespace {

nn::TransformerConfig layer_config(bool qk_norm) {
  nn::TransformerConfig cfg;
  cfg.vocab_size = 64;
  cfg.d_model = 48;
  cfg.n_layers = 1;
  cfg.n_heads = 4;
  cfg.n_kv_heads = 2;
  cfg.head_dim = 12;
  cfg.hidden_size = 96;
  cfg.rope_theta = 10000.0;
  cfg.qk_norm = qk_norm;
  return cfg;
}

// Materialized, with weights large enough (std 0.2) that attention is far from uniform, and norm
// weights that are not all 1.
void init_layer(nn::Attention& attn, uint64_t seed) {
  nn::materialize_parameters(attn);
  Generator gen(seed);
  for (auto& [name, t] : attn.named_parameters()) {
    if (name.find("norm") != std::string::npos)
      kernels::copy_into(*t, gen.normal(t->shape(), 1.0, 0.1));
    else
      nn::init_normal_(*t, gen, 0.2);
  }
}

// The layer's math from the references of every piece.
Tensor attention_layer_reference(const nn::Attention& a, const Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1), H = a.n_heads, Hkv = a.n_kv_heads, D = a.head_dim;
  Tensor q = nn::linear_reference(x, a.w_q.weight), k = nn::linear_reference(x, a.w_k.weight);
  Tensor v = nn::linear_reference(x, a.w_v.weight);
  if (a.qk_norm) {
    q = nn::rms_norm_reference(q, a.q_norm.weight, a.q_norm.eps);
    k = nn::rms_norm_reference(k, a.k_norm.weight, a.k_norm.eps);
  }
  // shape: (B, T, H*D) -> (B, T, H, D), and (B, T, Hkv*D) -> (B, T, Hkv, D)
  q = nn::apply_rope_reference(reshape(q, {B, T, H, D}), 0, a.rope);
  k = nn::apply_rope_reference(reshape(k, {B, T, Hkv, D}), 0, a.rope);
  v = reshape(v, {B, T, Hkv, D});
  Tensor out = causal_attention_reference(q, k, v, 0, 1.0 / std::sqrt(static_cast<double>(D)));
  // shape: (B, T, H, D) -> (B, T, H*D)
  return nn::linear_reference(reshape(out, {B, T, H * D}), a.w_out.weight);
}

}  // namespace

TEST_CASE("Attention has OLMo-core's children and parameter shapes") {
  nn::Attention with(layer_config(true)), without(layer_config(false));
  std::vector<std::pair<std::string, Shape>> want = {{"w_q.weight", {48, 48}},    {"w_k.weight", {24, 48}},
                                                     {"w_v.weight", {24, 48}},    {"w_out.weight", {48, 48}},
                                                     {"q_norm.weight", {48}},     {"k_norm.weight", {24}}};
  auto params = with.named_parameters();
  REQUIRE(params.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    CHECK(params[i].first == want[i].first);
    CHECK(params[i].second->shape() == want[i].second);
  }
  CHECK(without.named_parameters().size() == 4);
  CHECK(without.num_params() == 48 * 48 * 2 + 24 * 48 * 2);
}

TEST_CASE("Attention forward and parameter gradients match the composition of references") {
  for (bool qk_norm : {true, false}) {
    nn::Attention attn(layer_config(qk_norm));
    init_layer(attn, 3);
    Tensor x = Generator(4).normal({2, 7, 48}, 0, 1, DType::Float32);
    Tensor dy = Generator(5).normal({2, 7, 48}, 0, 1, DType::Float32);
    Tensor got = attn.forward(x);
    got.backward(dy);
    std::vector<Tensor> fused_grads;
    for (auto& [name, t] : attn.named_parameters()) {
      fused_grads.push_back(t->grad());
      t->zero_grad();
    }
    Tensor want = attention_layer_reference(attn, x);
    want.backward(dy);
    INFO("qk_norm ", qk_norm);
    CHECK(max_rel_diff(got, want) <= 1e-5);
    size_t i = 0;
    for (auto& named : attn.named_parameters()) {
      const std::string& name = named.first;
      Tensor* t = named.second;
      INFO("grad of ", name);
      CHECK(max_rel_diff(fused_grads[i++], t->grad()) <= 1e-5);
    }
  }
}

TEST_CASE("KV-cached decoding (prefill 5, then one token at a time) equals the full forward") {
  nn::Attention attn(layer_config(true));
  init_layer(attn, 7);
  const int64_t B = 2, T = 12;
  Tensor x = Generator(8).normal({B, T, 48}, 0, 1, DType::Float32);
  NoGradGuard no_grad;
  Tensor full = attn.forward(x);

  // Decodes tokens [from, T) of x in chunks of the given sizes, checking each against `full`.
  auto decode_and_check = [&](int64_t from, std::vector<int64_t> chunks) {
    int64_t t = from;
    for (int64_t n : chunks) {
      REQUIRE(attn.kv_position() == t);
      Tensor out = attn.forward(narrow(x, 1, t, n));
      INFO("tokens [", t, ", ", t + n, ")");
      CHECK(max_rel_diff(out, narrow(full, 1, t, n)) <= 1e-5);
      t += n;
    }
    CHECK(t == T);
    CHECK(attn.kv_position() == T);
  };

  attn.init_kv_cache(B, 16);
  CHECK(attn.has_kv_cache());
  decode_and_check(0, {5, 1, 1, 1, 1, 1, 1, 1});

  SUBCASE("rollback then re-decode reproduces the outputs") {
    attn.rollback_kv_cache(3);
    decode_and_check(9, {1, 1, 1});
    attn.rollback_kv_cache(100);  // not below 0
    CHECK(attn.kv_position() == 0);
    decode_and_check(0, {12});
  }
  SUBCASE("sync then re-decode reproduces the outputs") {
    attn.sync_kv_cache(4);
    decode_and_check(4, {3, 1, 4});
  }
  SUBCASE("reset starts a new sequence") {
    attn.reset_kv_cache();
    decode_and_check(0, {5, 7});
  }
  SUBCASE("free_kv_cache goes back to full attention over the input") {
    attn.free_kv_cache();
    CHECK(!attn.has_kv_cache());
    CHECK(attn.kv_position() == 0);
    CHECK(bit_identical(attn.forward(x), full));
  }
}

TEST_CASE("KV cache errors: past max_seq_len, batch size, gradients, bad sync, no cache") {
  nn::Attention attn(layer_config(true));
  init_layer(attn, 9);
  Tensor x = Generator(10).normal({2, 5, 48}, 0, 1, DType::Float32);
  CHECK_THROWS_WITH_AS(attn.reset_kv_cache(), doctest::Contains("init_kv_cache"), Error);
  attn.init_kv_cache(2, 8);
  {
    NoGradGuard no_grad;
    attn.forward(x);
    // 5 more tokens at position 5 would need 10 rows of 8: an error, and nothing changes.
    CHECK_THROWS_WITH_AS(attn.forward(x), doctest::Contains("writing 5 tokens at KV-cache position 5"), Error);
    CHECK_THROWS_WITH_AS(attn.forward(x), doctest::Contains("max_seq_len = 8"), Error);
    CHECK(attn.kv_position() == 5);
    CHECK_THROWS_WITH_AS(attn.forward(narrow(x, 0, 0, 1)), doctest::Contains("batch size 1"), Error);
    CHECK(attn.kv_position() == 5);
  }
  // Outside NoGradGuard the parameters (trainable from the start) would record a graph: refused.
  CHECK_THROWS_WITH_AS(attn.forward(narrow(x, 1, 0, 1)), doctest::Contains("NoGradGuard"), Error);
  CHECK(attn.kv_position() == 5);
  CHECK_THROWS_WITH_AS(attn.sync_kv_cache(9), doctest::Contains("target_length = 9"), Error);
  CHECK_THROWS_WITH_AS(attn.sync_kv_cache(-1), doctest::Contains("max_seq_len = 8"), Error);
  attn.sync_kv_cache(8);
  CHECK(attn.kv_position() == 8);
  CHECK_THROWS_WITH_AS(attn.forward(zeros({2, 5, 40})), doctest::Contains("[2, 5, 40]"), Error);
}
