// RoPE: the fused apply_rope against its reference (forward and backward, float64 and float32),
// gradcheck, start_pos offsets, hand-computed values, the float32 tables, and errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "nn/rope.h"
#include "support/op_harness.h"

using namespace hydra;
using namespace hydra::test;
using hydra::nn::apply_rope;
using hydra::nn::apply_rope_reference;
using hydra::nn::RotaryEmbedding;

namespace {

// Largest |got - want| / max(1, |want|).
double max_rel_diff(const Tensor& got, const Tensor& want) {
  REQUIRE(got.shape() == want.shape());
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, std::abs(g[i] - w[i]) / std::max(1.0, std::abs(w[i])));
  return worst;
}

// Fused vs reference in one dtype: the outputs, and the input gradients for a random upstream gradient.
void check_against_reference(const Shape& shape, int64_t start_pos, DType dtype, double tol) {
  RotaryEmbedding rope(shape[3], 10000.0);
  Tensor x0 = Generator(11).normal(shape, 0, 1, dtype);
  Tensor dy = Generator(12).normal(shape, 0, 1, dtype);
  Tensor xa = x0.detach().set_requires_grad(), xb = x0.detach().set_requires_grad();
  Tensor ya = apply_rope(xa, start_pos, rope), yb = apply_rope_reference(xb, start_pos, rope);
  ya.backward(dy);
  yb.backward(dy);
  INFO("shape ", shape_str(shape), " start_pos ", start_pos, " ", std::string(dtype_name(dtype)));
  CHECK(max_rel_diff(ya, yb) <= tol);
  CHECK(max_rel_diff(xa.grad(), xb.grad()) <= tol);
}

}  // namespace

TEST_CASE("apply_rope matches its reference, forward and backward, float64 and float32") {
  const std::vector<Shape> shapes = {{2, 5, 3, 8}, {1, 1, 1, 2}, {3, 7, 2, 64}, {1, 130, 4, 16}};
  for (const Shape& s : shapes)
    for (int64_t start : {0, 3, 1000}) {
      // Same formula, same operation order: only FMA contraction may differ by an ulp.
      check_against_reference(s, start, DType::Float64, 1e-15);
      check_against_reference(s, start, DType::Float32, 1e-6);
    }
}

TEST_CASE("apply_rope through the op harness: gradcheck, float32, non-contiguous input") {
  auto rope = std::make_shared<RotaryEmbedding>(6, 100.0);
  for (int64_t start : {0, 5}) {
    OpCase c{"apply_rope start " + std::to_string(start), {{{2, 3, 2, 6}}},
             [=](const Inputs& x) { return apply_rope(x[0], start, *rope); },
             [=](const Inputs& x) { return apply_rope_reference(x[0], start, *rope); }};
    c.forward_tol = 1e-15;
    c.float32_tol = 1e-6;
    check_op_case(c);
  }
}

TEST_CASE("apply_rope at position 0 is the identity") {
  RotaryEmbedding rope(8, 500000.0);
  Tensor x = Generator(3).normal({2, 1, 3, 8}, 0, 1, DType::Float32);
  std::vector<float> got = apply_rope(x, 0, rope).to_vector<float>(), want = x.to_vector<float>();
  CHECK(got == want);  // cos 0 = 1 and sin 0 = 0 exactly
}

TEST_CASE("apply_rope at position 1, D = 4: a hand-computed rotation") {
  // θ = 100, D = 4: inv_freq = [1/100^0, 1/100^(2/4)] = [1, 0.1], so at position 1 the angles are
  // [1, 0.1, 1, 0.1] and with x = [x1 | x2] = [1, 2 | 3, 4]:
  //   out = [1 cos 1 - 3 sin 1,  2 cos .1 - 4 sin .1,  3 cos 1 + 1 sin 1,  4 cos .1 + 2 sin .1]
  RotaryEmbedding rope(4, 100.0);
  Tensor x = from_vector<double>({1, 2, 3, 4}, {1, 1, 1, 4});
  std::vector<double> got = apply_rope(x, 1, rope).to_vector<double>();
  const double c1 = std::cos(1.0), s1 = std::sin(1.0), c2 = std::cos(0.1), s2 = std::sin(0.1);
  const std::vector<double> want = {1 * c1 - 3 * s1, 2 * c2 - 4 * s2, 3 * c1 + 1 * s1, 4 * c2 + 2 * s2};
  // The tables are float32 (0.1 is not exact in float), so agree to float32 precision.
  for (int i = 0; i < 4; ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-6));
  // Position 1 in a sequence starting at 0 is time step 1.
  Tensor seq = from_vector<double>({0, 0, 0, 0, 1, 2, 3, 4}, {1, 2, 1, 4});
  std::vector<double> step1 = narrow(apply_rope(seq, 0, rope), 1, 1, 1).to_vector<double>();
  CHECK(step1 == got);
}

TEST_CASE("apply_rope with start_pos equals the matching slice of a longer sequence") {
  RotaryEmbedding rope(16, 500000.0);
  Tensor x = Generator(5).normal({2, 300, 3, 16}, 0, 1, DType::Float32);
  Tensor full = apply_rope(x, 0, rope);
  for (int64_t start : {1, 7, 255, 256, 299}) {
    const int64_t len = std::min<int64_t>(5, 300 - start);
    std::vector<float> part = apply_rope(narrow(x, 1, start, len), start, rope).to_vector<float>();
    CHECK(part == narrow(full, 1, start, len).to_vector<float>());  // bit-identical: same table entries
  }
}

TEST_CASE("RotaryEmbedding tables: float32 OLMo-core formula, stable while the cache grows") {
  const int64_t D = 64;
  RotaryEmbedding rope(D, 500000.0);
  RotaryEmbedding::Tables early = rope.tables(3, 2);
  std::vector<float> early_cos = early.cos.to_vector<float>();
  RotaryEmbedding::Tables late = rope.tables(5000, 1);  // grows the cache far past 256 positions
  CHECK(late.cos.shape() == Shape{1, D});
  CHECK(early.cos.to_vector<float>() == early_cos);           // views handed out never change
  CHECK(rope.tables(3, 2).cos.to_vector<float>() == early_cos);  // nor do recomputed entries
  std::vector<float> c = late.cos.to_vector<float>(), s = late.sin.to_vector<float>();
  for (int64_t i = 0; i < D / 2; ++i) {
    const float inv_freq = 1.0f / std::pow(500000.0f, static_cast<float>(2 * i) / static_cast<float>(D));
    const float angle = 5000.0f * inv_freq;
    CHECK(c[i] == std::cos(angle));
    CHECK(s[i] == std::sin(angle));
    CHECK(c[i + D / 2] == c[i]);  // emb = cat(freqs, freqs)
    CHECK(s[i + D / 2] == s[i]);
  }
}

TEST_CASE("apply_rope errors name the op and the shape") {
  RotaryEmbedding rope(8, 10000.0);
  std::vector<ErrorCase> cases = {
      {"wrong head_dim", [&] { apply_rope(zeros({1, 2, 3, 6}), 0, rope); }, {"apply_rope", "D = 8", "[1, 2, 3, 6]"}},
      {"not 4-d", [&] { apply_rope(zeros({2, 8}), 0, rope); }, {"apply_rope", "[2, 8]"}},
      {"negative start", [&] { apply_rope(zeros({1, 2, 3, 8}), -1, rope); }, {"apply_rope", "start_pos = -1"}},
      {"int dtype", [&] { apply_rope(zeros({1, 2, 3, 8}, DType::Int64), 0, rope); }, {"apply_rope", "int64"}},
      {"odd head_dim", [&] { RotaryEmbedding bad(7, 10000.0); }, {"RotaryEmbedding", "head_dim = 7"}},
      {"bad theta", [&] { RotaryEmbedding bad(8, 0.0); }, {"RotaryEmbedding", "theta = 0"}},
      {"reference errors too", [&] { apply_rope_reference(zeros({1, 2, 3, 6}), 0, rope); },
       {"apply_rope_reference", "[1, 2, 3, 6]"}},
  };
  for (const ErrorCase& c : cases) check_error_case(c);
}
