// bfloat16 weights (tensor/bfloat16.h, tensor/gemm_bf16.h, docs/generation.md 'bfloat16 weights'): the
// rounding by hand (ties, NaN, infinities, overflow), the bf16 product against a float64 reference of the
// same rounded values and against float32, the two kernel paths bit for bit, row and thread
// independence, Linear/Embedding refusing gradients, a model's logits and greedy continuation in bf16
// against float32, and load_model_dir(dir, BFloat16).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "hydra/generate.h"
#include "hydra/model_dir.h"
#include "io/safetensors.h"
#include "nn/embedding.h"
#include "nn/linear.h"
#include "support/fixtures.h"
#include "support/op_harness.h"
#include "support/temp_dir.h"
#include "support/threads.h"
#include "tensor/bfloat16.h"
#include "tensor/gemm_bf16.h"
#include "tensor/random.h"

using namespace hydra;
using hydra::test::check_error_case;

namespace {

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Deterministic values: normal(0, scale) from `seed`.
std::vector<float> normal_values(int64_t n, uint64_t seed, double scale) {
  Generator gen(seed);
  std::vector<float> v = gen.normal({n}).to_vector<float>();
  for (float& x : v) x = static_cast<float>(x * scale);
  return v;
}

std::vector<bfloat16> rounded(const std::vector<float>& v) {
  std::vector<bfloat16> out(v.size());
  float_to_bfloat16(v.data(), out.data(), static_cast<int64_t>(v.size()));
  return out;
}

std::vector<float> run_gemm(kernels::Bf16Path path, int64_t M, int64_t N, int64_t K, const std::vector<float>& a,
                            const std::vector<bfloat16>& w) {
  std::vector<float> c(static_cast<size_t>(M * N), -1.0f);
  kernels::gemm_bf16_on(path, M, N, K, a.data(), K, w.data(), K, c.data(), N);
  return c;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A small Hydra whose heads' distributions are far from uniform (init_std 0.3), as in the generate tests.
std::unique_ptr<HydraTransformer> make_model(uint64_t seed) {
  HydraTransformerConfig c;
  c.base_config.vocab_size = 96;
  c.base_config.d_model = 64;
  c.base_config.n_layers = 3;
  c.base_config.n_heads = 4;
  c.base_config.n_kv_heads = 2;
  c.base_config.head_dim = 16;
  c.base_config.hidden_size = 96;
  c.base_config.rope_theta = 10000;
  c.base_config.init_std = 0.3;
  c.n_heads = 3;
  c.trunk_layers = 1;
  c.head_layers = 2;
  return c.build("cpu", seed);
}

// max |got - want| / max |want|.
double relative_error(const Tensor& got, const Tensor& want) {
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    diff = std::max(diff, std::abs(g[i] - w[i]));
    scale = std::max(scale, std::abs(w[i]));
  }
  return diff / scale;
}

}  // namespace

TEST_CASE("bfloat16: round to nearest even, ties, NaN, infinities and overflow") {
  CHECK(float_to_bfloat16_bits(1.0f) == 0x3f80);
  CHECK(float_to_bfloat16_bits(-2.0f) == 0xc000);
  // 1 + 2^-8 lies halfway between 0x3f80 (even) and 0x3f81: the even one wins.
  CHECK(float_to_bfloat16_bits(from_bits(0x3f808000u)) == 0x3f80);
  // 1 + 3·2^-8 lies halfway between 0x3f81 and 0x3f82 (even): up.
  CHECK(float_to_bfloat16_bits(from_bits(0x3f818000u)) == 0x3f82);
  // Just above and just below a tie.
  CHECK(float_to_bfloat16_bits(from_bits(0x3f808001u)) == 0x3f81);
  CHECK(float_to_bfloat16_bits(from_bits(0x3f817fffu)) == 0x3f81);
  // A carry through the mantissa into the exponent: 1.9999999 -> 2.
  CHECK(float_to_bfloat16_bits(from_bits(0x3fffffffu)) == 0x4000);
  // Infinities stay; the largest floats round to infinity (beyond the largest bfloat16 + half an ulp).
  CHECK(float_to_bfloat16_bits(std::numeric_limits<float>::infinity()) == 0x7f80);
  CHECK(float_to_bfloat16_bits(-std::numeric_limits<float>::infinity()) == 0xff80);
  CHECK(float_to_bfloat16_bits(std::numeric_limits<float>::max()) == 0x7f80);
  CHECK(float_to_bfloat16_bits(from_bits(0x7f7f7fffu)) == 0x7f7f);  // just under the tie: the largest bfloat16
  // NaN stays NaN with its sign, also a NaN whose payload is only in the dropped bits.
  for (uint32_t nan : {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu}) {
    const uint16_t b = float_to_bfloat16_bits(from_bits(nan));
    CHECK(std::isnan(bfloat16_bits_to_float(b)));
    CHECK((b >> 15) == (nan >> 31));
  }
  // Zeros and subnormals round like any value.
  CHECK(float_to_bfloat16_bits(-0.0f) == 0x8000);
  CHECK(float_to_bfloat16_bits(from_bits(0x00008000u)) == 0x0000);  // a tie to even (0)
  CHECK(float_to_bfloat16_bits(from_bits(0x00018000u)) == 0x0002);
  // Every bfloat16 value survives the round trip through float32.
  for (uint32_t b = 0; b < 0x10000u; ++b) {
    const float f = bfloat16_bits_to_float(static_cast<uint16_t>(b));
    if (!std::isnan(f)) REQUIRE(float_to_bfloat16_bits(f) == b);
  }
  // Tensors: to_bfloat16 / bfloat16_to_float32, a strided input.
  Tensor x = transpose(from_vector(std::vector<float>{1.0f, 3.0f, from_bits(0x3f808000u), -0.5f}, {2, 2}), 0, 1);
  Tensor b = to_bfloat16(x);
  CHECK(b.dtype() == DType::BFloat16);
  CHECK(bfloat16_to_float32(b).to_vector<float>() == std::vector<float>{1.0f, 1.0f, 3.0f, -0.5f});
}

TEST_CASE("bfloat16 is storage only: other ops refuse it with a message naming it") {
  Tensor b = to_bfloat16(from_vector(std::vector<float>{1, 2, 3, 4}, {2, 2}));
  check_error_case({"add", [&] { add(b, b); }, {"bfloat16"}});
  check_error_case({"to_vector", [&] { (void)b.to_vector<float>(); }, {"bfloat16", "storage only"}});
  check_error_case({"requires_grad", [&] { b.set_requires_grad(true); }, {"bfloat16"}});
}

TEST_CASE("gemm_bf16: equals a float64 sum of the rounded values, and float32 within the rounding's bound") {
  const int64_t M = 5, N = 37, K = 200;  // K not a multiple of 32; N not of 4
  const std::vector<float> a = normal_values(M * K, 1, 1.0), wf = normal_values(N * K, 2, 0.05);
  const std::vector<bfloat16> w = rounded(wf);
  const std::vector<float> c = run_gemm(kernels::bf16_path(), M, N, K, a, w);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t n = 0; n < N; ++n) {
      double exact = 0, exact_f32 = 0, magnitude = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double ab = to_float(to_bfloat16(a[i * K + k])), wb = to_float(w[n * K + k]);
        exact += ab * wb;
        exact_f32 += static_cast<double>(a[i * K + k]) * wf[n * K + k];
        magnitude += std::abs(ab * wb);
      }
      const double got = c[static_cast<size_t>(i * N + n)];
      // float32 sums of K terms: within a few float32 ulps of the magnitude.
      CHECK(std::abs(got - exact) <= 1e-6 * magnitude);
      // Rounding a and w to bfloat16 moves each term by at most 2·2^-9 of itself.
      CHECK(std::abs(got - exact_f32) <= 2 * std::ldexp(1.0, -9) * magnitude + 1e-6 * magnitude);
    }
}

TEST_CASE("gemm_bf16: the portable and avx512_bf16 paths give the same bits") {
  if (!kernels::cpu_has_avx512_bf16()) {
    MESSAGE("this CPU has no AVX-512 bf16: only the portable path runs here, the comparison is skipped");
    return;
  }
  struct Shape3 {
    int64_t M, N, K;
  };
  for (const Shape3 s : {Shape3{1, 1, 1}, Shape3{1, 5, 31}, Shape3{3, 8, 32}, Shape3{4, 9, 33}, Shape3{1, 300, 512},
                         Shape3{17, 37, 200}, Shape3{70, 13, 97}, Shape3{2, 4096, 64},
                         Shape3{5, 7, 2048}, Shape3{6, 3, 4000}}) {
    INFO("M ", s.M, " N ", s.N, " K ", s.K);
    const std::vector<float> a = normal_values(s.M * s.K, 3, 1.0);
    const std::vector<bfloat16> w = rounded(normal_values(s.N * s.K, 4, 0.05));
    CHECK(same_bits(run_gemm(kernels::Bf16Path::Portable, s.M, s.N, s.K, a, w),
                    run_gemm(kernels::Bf16Path::Avx512Bf16, s.M, s.N, s.K, a, w)));
  }
  // Values at the ends of the range: subnormal inputs (read as zero), products and sums that underflow
  // (flushed), large values, mixed signs.
  const int64_t K = 64;
  std::vector<float> a(2 * K), wf(3 * K);
  for (int64_t k = 0; k < K; ++k) {
    a[k] = k % 3 == 0 ? 1e-39f : (k % 3 == 1 ? 1e-20f : -3e30f);
    a[K + k] = k % 2 ? 1e-30f : -1e-30f;
    wf[k] = 1e-20f;
    wf[K + k] = k % 2 ? 2e-10f : -1e-39f;
    wf[2 * K + k] = k % 5 ? 1e8f : -7e-9f;
  }
  const std::vector<bfloat16> w = rounded(wf);
  CHECK(same_bits(run_gemm(kernels::Bf16Path::Portable, 2, 3, K, a, w),
                  run_gemm(kernels::Bf16Path::Avx512Bf16, 2, 3, K, a, w)));
}

// The edge of the normal range, by hand. Lane 0 holds 2^-126 (pair 0) when pair 64 adds -f·2^-150 to it.
// Rounded with an unbounded exponent, the sum is below 2^-126 (tiny: flushed to zero) for f = 0.75 and 1,
// and rounds up to 2^-126 for f = 0.5 (a tie, to even) and 0.25; IEEE rounding to the subnormal grid
// would give 2^-126 for f = 0.75 and 1 too. vdpbf16ps flushes there (measured on a Zen 5), so both paths
// must. The final pairwise reduction adds normally: 1.5·2^-126 - 2^-126 stays the subnormal 2^-127.
TEST_CASE("gemm_bf16: sums tiny after rounding flush to zero, as vdpbf16ps does; the reduction keeps subnormals") {
  const int64_t K = 130;
  struct EdgeCase {
    double f;
    float want;
  };
  // (No structured binding: clang 14, the sanitizer build's compiler, cannot capture one in INFO's lambda.)
  for (const EdgeCase& edge : {EdgeCase{0.25, std::ldexp(1.0f, -126)}, EdgeCase{0.5, std::ldexp(1.0f, -126)},
                               EdgeCase{0.75, 0.0f}, EdgeCase{1.0, 0.0f}, EdgeCase{1.25, 0.0f}}) {
    const double f = edge.f;
    const float want = edge.want;
    std::vector<float> a(K, 0.0f), wf(K, 0.0f);
    a[0] = wf[0] = std::ldexp(1.0f, -63);                       // pair 0, even: 2^-126 into lane 0
    a[129] = static_cast<float>(std::ldexp(2.0 * f, -76));       // pair 64, odd: -f·2^-150 into lane 0
    wf[129] = -std::ldexp(1.0f, -75);
    const std::vector<bfloat16> w = rounded(wf);
    for (kernels::Bf16Path path : {kernels::Bf16Path::Portable, kernels::bf16_path()}) {
      INFO("f ", f, ", path ", std::string(kernels::bf16_path_name(path)));
      const std::vector<float> c = run_gemm(path, 1, 1, K, a, w);
      CHECK(std::memcmp(&c[0], &want, sizeof(float)) == 0);
    }
  }
  std::vector<float> a(4, 0.0f), wf(4, 0.0f);
  a[0] = std::ldexp(1.5f, -63);   // pair 0 (lane 0): 1.5·2^-126
  wf[0] = std::ldexp(1.0f, -63);
  a[2] = -std::ldexp(1.0f, -63);  // pair 1 (lane 1): -2^-126
  wf[2] = std::ldexp(1.0f, -63);
  for (kernels::Bf16Path path : {kernels::Bf16Path::Portable, kernels::bf16_path()}) {
    INFO("path ", std::string(kernels::bf16_path_name(path)));
    CHECK(run_gemm(path, 1, 1, 4, a, rounded(wf))[0] == std::ldexp(1.0f, -127));
  }
}

TEST_CASE("gemm_bf16: row i has the same bits whatever the number of rows, and at 1 and 2 threads") {
  const int64_t N = 1000, K = 384;
  const std::vector<float> a = normal_values(20 * K, 5, 1.0);
  const std::vector<bfloat16> w = rounded(normal_values(N * K, 6, 0.05));
  for (kernels::Bf16Path path : {kernels::Bf16Path::Portable, kernels::bf16_path()}) {
    INFO("path ", std::string(kernels::bf16_path_name(path)));
    const std::vector<float> all = run_gemm(path, 20, N, K, a, w);
    for (int64_t i : {0, 7, 19}) {
      const std::vector<float> row(a.begin() + i * K, a.begin() + (i + 1) * K);
      const std::vector<float> one = run_gemm(path, 1, N, K, row, w);
      CHECK(std::memcmp(one.data(), all.data() + i * N, N * sizeof(float)) == 0);
    }
  }
  Tensor x = from_vector(a, {20, K});
  Tensor weight = to_bfloat16(from_vector(normal_values(N * K, 6, 0.05), {N, K}));
  NoGradGuard no_grad;
  test::expect_thread_invariant([&] { return std::vector<Tensor>{nn::linear(x, weight)}; }, {"linear"});
}

TEST_CASE("Linear and Embedding with bfloat16 weights: float32 in and out, no gradient") {
  Tensor wf = from_vector(normal_values(6 * 40, 7, 0.1), {6, 40});
  Tensor w = to_bfloat16(wf);
  Tensor x = from_vector(normal_values(3 * 2 * 40, 8, 1.0), {3, 2, 40});
  {
    NoGradGuard no_grad;
    Tensor y = nn::linear(x, w);
    CHECK(y.shape() == Shape{3, 2, 6});
    CHECK(y.dtype() == DType::Float32);
    CHECK(relative_error(y, nn::linear(x, wf)) < 1e-2);
    Tensor table = to_bfloat16(from_vector(normal_values(10 * 4, 9, 1.0), {10, 4}));
    Tensor e = nn::embedding(from_vector(std::vector<int64_t>{3, 0, 3}, {1, 3}), table);
    CHECK(e.shape() == Shape{1, 3, 4});
    const std::vector<float> rows = bfloat16_to_float32(table).to_vector<float>(), got = e.to_vector<float>();
    for (int64_t c = 0; c < 4; ++c) {
      CHECK(got[c] == rows[3 * 4 + c]);
      CHECK(got[4 + c] == rows[c]);
    }
  }
  Tensor xg = x.detach();
  xg.set_requires_grad(true);
  check_error_case({"gradient through bf16", [&] { nn::linear(xg, w); }, {"bfloat16", "inference only"}});
  check_error_case({"float64 input", [&] { nn::linear(cast(x, DType::Float64), w); }, {"float32"}});
}

TEST_CASE("a model in bfloat16: logits within 2e-2 of float32, the same greedy continuation") {
  NoGradGuard no_grad;
  auto model = make_model(11);
  const Tensor ids = from_vector(std::vector<int64_t>{5, 17, 3, 88, 41, 9, 60, 2}, {1, 8});
  const Tensor fp32 = model->forward(ids);
  GenerateOptions o;
  o.temperature = 0;
  o.max_new_tokens = 12;
  o.mode = GenerateMode::ProductOfExperts;
  const std::vector<int64_t> prompt{5, 17, 3, 88};
  const GenerateResult g32 = generate(*model, prompt, o);

  // The embedding table, the lm_head and 7 linear weights in each of the 7 blocks (1 trunk + 3 heads × 2).
  CHECK(nn::convert_matrices_to_bfloat16(*model) == 2 + 7 * 7);
  for (const auto& entry : model->named_parameters())  // (not a structured binding: clang 14 cannot capture one)
    CHECK_MESSAGE(entry.second->dtype() == (entry.second->dim() == 2 ? DType::BFloat16 : DType::Float32), entry.first);
  const Tensor bf16 = model->forward(ids);
  const double err = relative_error(bf16, fp32);
  MESSAGE("bf16 logits: max relative error ", err);
  CHECK(err < 2e-2);
  CHECK(err > 0);  // the weights really changed
  const GenerateResult g16 = generate(*model, prompt, o);
  CHECK(g16.ids == g32.ids);
  // Training refuses the bf16 weights.
  check_error_case({"set_trainable", [&] { model->set_trainable("heads.0.*", true); }, {"bfloat16"}});
}

TEST_CASE("load_model_dir as bfloat16: from F32 and from BF16 files, the same weights and logits") {
  NoGradGuard no_grad;
  test::TempDir tmp("bf16");
  auto model = make_model(12);
  const std::string f32_dir = tmp.file("f32"), bf16_dir = tmp.file("bf16");
  save_model_dir(f32_dir, *model);
  const Tensor ids = from_vector(std::vector<int64_t>{1, 2, 3, 4, 5}, {1, 5});
  auto a = load_model_dir(f32_dir, DType::BFloat16);
  nn::convert_matrices_to_bfloat16(*model);
  save_model_dir(bf16_dir, *model);  // matrices written as BF16
  const io::SafetensorsHeader header = io::read_safetensors_header(bf16_dir + "/model.safetensors");
  for (const io::SafetensorsTensorInfo& t : header.tensors) CHECK_MESSAGE(t.dtype == (t.shape.size() == 2 ? "BF16" : "F32"), t.name);
  auto b = load_model_dir(bf16_dir, DType::BFloat16);
  auto widened = load_model_dir(bf16_dir);  // the default: float32, widened exactly
  CHECK(widened->trunk.embeddings.weight.dtype() == DType::Float32);
  for (auto* m : {a.get(), b.get()}) {
    auto pa = m->named_parameters();
    auto pm = model->named_parameters();
    for (size_t i = 0; i < pa.size(); ++i) {
      REQUIRE(pa[i].second->dtype() == pm[i].second->dtype());
      CHECK_MESSAGE(std::memcmp(pa[i].second->raw_data(), pm[i].second->raw_data(),
                                static_cast<size_t>(pa[i].second->numel()) * dtype_size(pa[i].second->dtype())) == 0,
                    pa[i].first);
    }
  }
  CHECK(test::bit_identical(a->forward(ids), model->forward(ids)));
  CHECK(test::bit_identical(b->forward(ids), model->forward(ids)));
  CHECK(relative_error(widened->forward(ids), model->forward(ids)) < 1e-2);
  check_error_case({"bad dtype", [&] { load_model_dir(f32_dir, DType::Int32); }, {"float32 or bfloat16", "int32"}});
}
