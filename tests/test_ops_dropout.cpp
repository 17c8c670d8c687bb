// dropout: forward vs a float64 reference (the mask rebuilt from the generator's bits), gradcheck with the
// mask fixed (a fresh generator at the same state on every call), non-contiguous inputs; the drop rate,
// the inverted scaling, determinism (same state -> same mask, 1 vs 2 threads bit-identical), how the
// generator advances, and errors.
#include <doctest/doctest.h>

#include <cmath>

#include "support/op_harness.h"
#include "tensor/parallel.h"

using namespace hydra;
using namespace hydra::test;

namespace {

constexpr uint64_t kSeed = 11;

// The map dropout must compute, written from the generator's raw bits: element i is dropped when its
// uniform (bits >> 11) / 2^53 is below p; the rest are divided by 1 - p.
Tensor dropout_reference(const Tensor& x, double p, uint64_t seed, uint64_t offset) {
  Generator g(seed);
  g.set_state(seed, offset);
  std::vector<double> v = x.to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i) {
    const double u = static_cast<double>(g.bits(i, 0) >> 11) / 9007199254740992.0;  // 2^53
    v[i] = u < p ? 0.0 : v[i] / (1.0 - p);
  }
  return ref_tensor(x.shape(), v);
}

}  // namespace

TEST_CASE("dropout through the op harness (the mask fixed by the generator state)") {
  const std::vector<Shape> shapes = {{1}, {7}, {3, 5}, {2, 3, 4}};
  for (double p : {0.1, 0.5, 0.9})
    for (const Shape& s : shapes) {
      OpCase c{"dropout p=" + std::to_string(p) + " " + shape_str(s), {{s}},
               [p](const Inputs& x) {
                 Generator g(kSeed);  // a fresh generator each call: the same mask every time
                 return dropout(x[0], p, g);
               },
               [p](const Inputs& x) { return dropout_reference(x[0], p, kSeed, 0); }};
      check_op_case(c);
    }
}

TEST_CASE("dropout drops a fraction p, scales the rest by 1/(1-p), and keeps the mean") {
  const int64_t n = 1 << 20;
  Tensor x = ones({n});
  for (double p : {0.1, 0.25, 0.5}) {
    Generator g(3);
    std::vector<float> y = dropout(x, p, g).to_vector<float>();
    int64_t dropped = 0, wrong = 0;
    double total = 0;
    const float kept = static_cast<float>(1.0 / (1.0 - p));
    for (float v : y) {
      if (v == 0.0f) ++dropped;
      else wrong += v != kept;
      total += v;
    }
    CHECK(wrong == 0);
    // Binomial(n, p): the standard deviation of the dropped fraction is sqrt(p(1-p)/n) < 0.0005; allow 6 of them.
    const double tol = 6 * std::sqrt(p * (1 - p) / static_cast<double>(n));
    CHECK(std::abs(static_cast<double>(dropped) / n - p) < tol);
    CHECK(std::abs(total / n - 1.0) < tol / (1 - p));
  }
}

TEST_CASE("dropout: the same generator state gives the same mask; the generator advances by numel") {
  Tensor x = Generator(5).normal({64, 33});
  Generator a(9), b(9);
  Tensor ya = dropout(x, 0.3, a);
  CHECK(a.offset() == static_cast<uint64_t>(x.numel()));
  Tensor yb = dropout(x, 0.3, b);
  CHECK(ya.to_vector<float>() == yb.to_vector<float>());
  // The next draw uses a new mask.
  Tensor ya2 = dropout(x, 0.3, a);
  CHECK(ya2.to_vector<float>() != ya.to_vector<float>());
  CHECK(a.offset() == 2 * static_cast<uint64_t>(x.numel()));
  // A non-contiguous view with the same values gets the same mask (element i is row-major position i).
  Tensor xt = transpose(contiguous(transpose(x, 0, 1)), 0, 1);
  REQUIRE(!xt.is_contiguous());
  Generator c(9);
  CHECK(dropout(xt, 0.3, c).to_vector<float>() == ya.to_vector<float>());
  // p = 0 is the identity and draws nothing.
  Generator d(9);
  CHECK(dropout(x, 0.0, d).shares_storage_with(x));
  CHECK(d.offset() == 0);
}

TEST_CASE("dropout is bit-identical for 1 and 2 threads, forward and backward") {
  auto run = [](int threads) {
    set_num_threads(threads);
    Tensor x = Generator(1).normal({300, 257}).set_requires_grad();
    Generator g(77);
    Tensor y = dropout(x, 0.4, g);
    y.backward(Generator(2).normal({300, 257}));
    std::vector<float> out = y.to_vector<float>(), dx = x.grad().to_vector<float>();
    out.insert(out.end(), dx.begin(), dx.end());
    set_num_threads(default_num_threads());
    return out;
  };
  CHECK(run(1) == run(2));
}

TEST_CASE("dropout errors name the op and the bad value") {
  Tensor x = zeros({2, 3});
  Generator g(0);
  std::vector<ErrorCase> cases = {
      {"p = 1", [&] { dropout(x, 1.0, g); }, {"dropout", "[0, 1)", "1"}},
      {"p < 0", [&] { dropout(x, -0.1, g); }, {"dropout", "-0.1"}},
      {"int input", [&] { dropout(zeros({2}, DType::Int64), 0.5, g); }, {"dropout", "int64"}},
  };
  for (const ErrorCase& c : cases) check_error_case(c);
  CHECK(g.offset() == 0);  // a refused call draws nothing
}
