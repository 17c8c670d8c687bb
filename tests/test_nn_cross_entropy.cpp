// nn/cross_entropy: the fused loss against float64 loops and against cross_entropy_reference (composed from
// primitives), gradcheck, non-contiguous logits and targets, int32 and int64 targets, ignore_index, large
// logits, errors, and bit-identical results for any thread count.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "nn/cross_entropy.h"
#include "support/op_harness.h"
#include "support/threads.h"
#include "tensor/parallel.h"

using namespace hydra;
using namespace hydra::test;
using hydra::nn::cross_entropy_reference;

namespace {

// mean over counted rows of logsumexp(row) - row[target], in plain float64 loops.
Tensor ref_cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  const int64_t V = logits.size(-1);
  std::vector<double> x = logits.to_vector<double>();
  std::vector<int64_t> t = targets.to_vector<int64_t>();
  double total = 0, count = 0;
  for (size_t r = 0; r < t.size(); ++r) {
    if (t[r] == ignore_index) continue;
    const double* row = x.data() + r * V;
    double m = -INFINITY, s = 0;
    for (int64_t k = 0; k < V; ++k) m = std::max(m, row[k]);
    for (int64_t k = 0; k < V; ++k) s += std::exp(row[k] - m);
    total += m + std::log(s) - row[t[r]];
    count += 1;
  }
  return ref_tensor({}, {total / count});
}


}  // namespace

TEST_CASE("cross_entropy: shapes, int32 and int64 targets, with and without ignored rows") {
  struct Shapes {
    Shape logits, targets;
  };
  const std::vector<Shapes> shapes = {
      {{5}, {}},            // one unbatched row: 0-d target
      {{1, 1}, {1}},        // V = 1: the loss and its gradient are 0
      {{6, 1}, {6}},
      {{4, 5}, {4}},
      {{2, 3, 7}, {2, 3}},  // (B, T, V)
      {{3, 1, 4}, {3, 1}},
  };
  int cases = 0;
  for (const Shapes& s : shapes)
    for (DType dt : {DType::Int32, DType::Int64})
      for (int64_t ignore : {kIgnoreIndex, int64_t{0}}) {  // 0: a real class may be the ignored one
        // With ignored rows only where at least one row stays counted.
        for (bool ignore_some : {false, true}) {
          if (ignore_some && shape_numel(s.targets) < 2) continue;
          const int64_t V = s.logits.back();
          OpCase c{"cross_entropy " + shape_str(s.logits) + (dt == DType::Int32 ? " int32" : " int64") +
                       " ignore " + std::to_string(ignore) + (ignore_some ? " some ignored" : ""),
                   {{s.logits}, {s.targets, Fill::Index, V, dt, false}},
                   [=](const Inputs& x) {
                     return cross_entropy(x[0], ignore_some ? with_ignored(x[1], ignore) : x[1], ignore);
                   },
                   [=](const Inputs& x) {
                     return ref_cross_entropy(x[0], ignore_some ? with_ignored(x[1], ignore) : x[1], ignore);
                   }};
          // If every target drawn for the gradient check is ignored (V = 1 with ignore 0, say), the loss is
          // NaN on both sides: the forward comparison accepts that, a gradient check cannot.
          Tensor grad_targets = make_inputs(c.inputs, DType::Float64, 99, false)[1];
          if (ignore_some) grad_targets = with_ignored(grad_targets, ignore);
          bool any_counted = false;
          for (int64_t v : grad_targets.to_vector<int64_t>()) any_counted |= v != ignore;
          c.check_grad = any_counted;
          check_op_case(c);
          ++cases;
        }
      }
  CHECK(cases == 40);
}

TEST_CASE("cross_entropy equals cross_entropy_reference (log_softmax, index_select, gather, mean), forward and gradient") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (int64_t ignore : {kIgnoreIndex, int64_t{3}}) {
      Generator gen(11);
      Tensor x = gen.normal({9, 13}, 0, 2, dt);
      Tensor t = with_ignored(gen.randint({9}, 0, 13), ignore);
      Tensor a = x.detach().set_requires_grad(), b = x.detach().set_requires_grad();
      Tensor fused = cross_entropy(a, t, ignore);
      Tensor slow = cross_entropy_reference(b, t, ignore);
      fused.backward();
      slow.backward();
      const double tol = dt == DType::Float64 ? 1e-14 : 2e-6;
      INFO(dtype_name(dt), " ignore_index ", ignore);
      CHECK(fused.item<double>() == doctest::Approx(slow.item<double>()).epsilon(tol));
      std::vector<double> ga = a.grad().to_vector<double>(), gb = b.grad().to_vector<double>();
      for (size_t i = 0; i < ga.size(); ++i) CHECK(std::abs(ga[i] - gb[i]) <= tol);
    }
  }
}

TEST_CASE("cross_entropy: ignored rows get zero gradient and do not count in the mean") {
  Generator gen(5);
  Tensor x = gen.normal({6, 4}, 0, 1, DType::Float64).set_requires_grad();
  Tensor t = from_vector<int64_t>({1, -100, 3, -100, 0, 2}, {6});
  Tensor loss = cross_entropy(x, t);
  // Only rows 0, 2, 4, 5 count: the same as the loss over just those rows.
  Tensor kept = index_select(x.detach(), 0, from_vector<int64_t>({0, 2, 4, 5}, {4}));
  CHECK(loss.item<double>() == doctest::Approx(cross_entropy(kept, from_vector<int64_t>({1, 3, 0, 2}, {4})).item<double>()).epsilon(1e-15));
  loss.backward();
  std::vector<double> g = x.grad().to_vector<double>();
  for (int64_t r : {1, 3})
    for (int64_t k = 0; k < 4; ++k) CHECK(g[r * 4 + k] == 0.0);
  // Each counted row's gradient sums to 0 (softmax sums to 1, minus the onehot).
  for (int64_t r : {0, 2, 4, 5}) CHECK(std::abs(g[r * 4] + g[r * 4 + 1] + g[r * 4 + 2] + g[r * 4 + 3]) < 1e-15);
}

TEST_CASE("cross_entropy with every target ignored is NaN and sends back zeros") {
  Tensor x = zeros({3, 4}).set_requires_grad();
  Tensor loss = cross_entropy(x, full({3}, -100, DType::Int64));
  CHECK(std::isnan(loss.item<float>()));
  CHECK(std::isnan(cross_entropy_reference(x, full({3}, -100, DType::Int64)).item<float>()));
  loss.backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>(12, 0.0f));
}

TEST_CASE("cross_entropy with large logits (1e4) stays finite and accurate") {
  Generator gen(9);
  Tensor x = mul_scalar(gen.normal({8, 50}, 0, 1, DType::Float32), 1e4).detach().set_requires_grad();
  Tensor t = gen.randint({8}, 0, 50);
  Tensor loss = cross_entropy(x, t);
  // The float32 logits are exact in float64, so the float64 run is the reference for both results.
  Tensor x64 = cast(x.detach(), DType::Float64).set_requires_grad();
  Tensor loss64 = cross_entropy(x64, t);
  CHECK(std::isfinite(loss.item<float>()));
  CHECK(loss.item<double>() == doctest::Approx(ref_cross_entropy(x64, t, kIgnoreIndex).item<double>()).epsilon(1e-7));
  loss.backward();
  loss64.backward();
  std::vector<float> g = x.grad().to_vector<float>();
  std::vector<double> g64 = x64.grad().to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    CHECK(std::isfinite(g[i]));
    CHECK(std::abs(g[i] - g64[i]) <= 1e-7);  // |g| <= 1/8; float32 resolution near 1/8 is ~7e-9
  }
}

TEST_CASE("cross_entropy is bit-identical for any thread count") {
  Generator gen(21);
  Tensor x = gen.normal({512, 4096}, 0, 3, DType::Float32);
  Tensor t = with_ignored(gen.randint({512}, 0, 4096), kIgnoreIndex);
  auto run = [&] {
    Tensor xs = x.detach().set_requires_grad();
    Tensor loss = cross_entropy(xs, t);
    loss.backward();
    return std::vector<Tensor>{loss, xs.grad()};
  };
  expect_thread_invariant(run, {"loss", "dlogits"});
}

TEST_CASE("cross_entropy errors name the problem, the shapes and the bad target") {
  Tensor logits = zeros({2, 3, 5});
  std::vector<ErrorCase> cases = {
      {"targets shape", [&] { cross_entropy(logits, zeros({4}, DType::Int64)); },
       {"cross_entropy", "targets shape [4]", "logits shape [2, 3, 5]", "[2, 3]"}},
      {"targets with the class dim", [&] { cross_entropy(logits, zeros({2, 3, 5}, DType::Int64)); },
       {"cross_entropy", "[2, 3, 5]", "[2, 3]"}},
      {"target too large",
       [&] {
         Tensor t = zeros({2, 3}, DType::Int64);
         t.data<int64_t>()[5] = 7;  // position [1, 2]
         cross_entropy(logits, t);
       },
       {"cross_entropy", "target 7", "position [1, 2]", "V = 5"}},
      {"negative target that is not ignore_index",
       [&] { cross_entropy(logits, full({2, 3}, -1, DType::Int32)); },
       {"cross_entropy", "target -1", "position [0, 0]", "V = 5", "-100"}},
      {"float targets", [&] { cross_entropy(logits, zeros({2, 3})); }, {"cross_entropy", "targets", "float32", "[2, 3]"}},
      {"int logits", [&] { cross_entropy(zeros({2, 5}, DType::Int64), zeros({2}, DType::Int64)); },
       {"cross_entropy", "logits", "int64", "[2, 5]"}},
      {"0-d logits", [&] { cross_entropy(zeros({}), zeros({}, DType::Int64)); }, {"cross_entropy", "[]"}},
  };
  for (const ErrorCase& c : cases) check_error_case(c);
}
