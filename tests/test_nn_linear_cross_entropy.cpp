// nn/linear_cross_entropy: the fused projection + loss against float64 loops (forward and gradcheck, the
// OpCase table) at block sizes that cut the rows unevenly, against the unfused linear + cross_entropy in
// float32 and float64, ignored rows, no graph under NoGradGuard, 1-vs-2-thread bit identity, errors.
#include <doctest/doctest.h>

#include <cmath>

#include "autograd/grad_mode.h"
#include "nn/linear_cross_entropy.h"
#include "support/op_harness.h"
#include "support/threads.h"

using namespace hydra;
using namespace hydra::test;
using hydra::nn::linear_cross_entropy;
using hydra::nn::linear_cross_entropy_reference;

namespace {

// scale · Σ over counted rows of logsumexp(z) - z[target], z = x Wᵀ, in plain float64 loops.
Tensor ref_linear_ce(const Tensor& x, const Tensor& w, const Tensor& targets, double scale, int64_t ignore) {
  const int64_t C = w.size(1), V = w.size(0);
  const std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>();
  const std::vector<int64_t> t = targets.to_vector<int64_t>();
  double total = 0;
  for (size_t r = 0; r < t.size(); ++r) {
    if (t[r] == ignore) continue;
    std::vector<double> z(static_cast<size_t>(V), 0.0);
    for (int64_t v = 0; v < V; ++v)
      for (int64_t c = 0; c < C; ++c) z[v] += xv[r * C + c] * wv[v * C + c];
    double m = -INFINITY, s = 0;
    for (double zi : z) m = std::max(m, zi);
    for (double zi : z) s += std::exp(zi - m);
    total += m + std::log(s) - z[static_cast<size_t>(t[r])];
  }
  return ref_tensor({}, {scale * total});
}

}  // namespace

TEST_CASE("linear_cross_entropy: forward and gradcheck against float64 loops, blocks of every size") {
  struct Shapes {
    Shape x, w, targets;
  };
  const std::vector<Shapes> shapes = {
      {{1, 3}, {4, 3}, {1}},
      {{5, 3}, {7, 3}, {5}},
      {{2, 3, 4}, {6, 4}, {2, 3}},  // (B, T, C)
  };
  int cases = 0;
  for (const Shapes& s : shapes)
    for (int64_t block_rows : {0, 1, 2, 4})  // 2 and 4 leave a short last block on 5 and 6 rows
      for (bool ignore_some : {false, true}) {
        if (ignore_some && shape_numel(s.targets) < 2) continue;
        const double scale = 0.37;
        OpCase c{"linear_cross_entropy x " + shape_str(s.x) + " w " + shape_str(s.w) + " block " +
                     std::to_string(block_rows) + (ignore_some ? " some ignored" : ""),
                 {{s.x}, {s.w}, {s.targets, Fill::Index, s.w[0], DType::Int64, false}},
                 [=](const Inputs& x) {
                   return linear_cross_entropy(x[0], x[1], ignore_some ? with_ignored(x[2], kIgnoreIndex) : x[2], scale,
                                               kIgnoreIndex, block_rows);
                 },
                 [=](const Inputs& x) {
                   return ref_linear_ce(x[0], x[1], ignore_some ? with_ignored(x[2], kIgnoreIndex) : x[2], scale, kIgnoreIndex);
                 }};
        // A different block size sums dW in another order: a non-contiguous input is still exact for the
        // same block size, but the float32 bound is the product's.
        c.float32_tol = 1e-5;
        check_op_case(c);
        ++cases;
      }
  CHECK(cases == 20);
}

TEST_CASE("linear_cross_entropy equals the unfused linear + cross_entropy, loss and both gradients") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (int64_t block_rows : {0, 3, 64}) {
      Generator gen(21);
      const Tensor x0 = gen.normal({4, 10, 16}, 0, 1, dt), w0 = gen.normal({50, 16}, 0, 0.3, dt);
      const Tensor t = with_ignored(gen.randint({4, 10}, 0, 50), kIgnoreIndex);
      Tensor xa = x0.detach().set_requires_grad(), wa = w0.detach().set_requires_grad();
      Tensor xb = x0.detach().set_requires_grad(), wb = w0.detach().set_requires_grad();
      Tensor fused = linear_cross_entropy(xa, wa, t, 1.0 / 40, kIgnoreIndex, block_rows);
      Tensor unfused = linear_cross_entropy_reference(xb, wb, t, 1.0 / 40);
      fused.backward();
      unfused.backward();
      INFO(dtype_name(dt), " block_rows ", block_rows);
      const double tol = dt == DType::Float64 ? 1e-13 : 3e-6;
      CHECK(fused.item<double>() == doctest::Approx(unfused.item<double>()).epsilon(tol));
      for (auto [a, b] : {std::pair{xa.grad(), xb.grad()}, std::pair{wa.grad(), wb.grad()}}) {
        const std::vector<double> ga = a.to_vector<double>(), gb = b.to_vector<double>();
        double worst = 0;
        for (size_t i = 0; i < ga.size(); ++i) worst = std::max(worst, std::abs(ga[i] - gb[i]));
        CHECK(worst <= tol);
      }
    }
  }
}

TEST_CASE("linear_cross_entropy: a frozen weight gets no gradient work, and without a graph only the loss") {
  Generator gen(3);
  const Tensor x0 = gen.normal({6, 8}), w = gen.normal({12, 8});
  const Tensor t = gen.randint({6}, 0, 12);
  const double want = linear_cross_entropy_reference(x0, w, t, 0.5).item<double>();
  Tensor x = x0.detach().set_requires_grad();
  Tensor loss = linear_cross_entropy(x, w, t, 0.5, kIgnoreIndex, 4);
  CHECK(loss.item<double>() == doctest::Approx(want).epsilon(1e-6));
  loss.backward();
  CHECK(x.grad().defined());
  CHECK(!w.grad().defined());
  {
    NoGradGuard no_grad;
    Tensor x2 = x0.detach().set_requires_grad();
    Tensor l2 = linear_cross_entropy(x2, w, t, 0.5, kIgnoreIndex, 4);
    CHECK(!l2.requires_grad());
    CHECK(l2.item<double>() == loss.item<double>());  // the same loss, bit for bit
  }
  // Every row ignored: a sum over no rows is 0, and the gradients are zeros.
  Tensor xi = x0.detach().set_requires_grad();
  Tensor li = linear_cross_entropy(xi, w, full({6}, kIgnoreIndex, DType::Int64), 0.5);
  CHECK(li.item<double>() == 0.0);
  li.backward();
  CHECK(xi.grad().to_vector<float>() == std::vector<float>(48, 0.0f));
}

TEST_CASE("linear_cross_entropy is bit-identical with 1 and 2 threads") {
  Generator gen(8);
  const Tensor x0 = gen.normal({3, 100, 64}), w0 = gen.normal({300, 64}, 0, 0.2);
  const Tensor t = with_ignored(gen.randint({3, 100}, 0, 300), kIgnoreIndex);
  expect_thread_invariant(
      [&] {
        Tensor x = x0.detach().set_requires_grad(), w = w0.detach().set_requires_grad();
        Tensor loss = linear_cross_entropy(x, w, t, 1.0 / 200, kIgnoreIndex, 64);
        loss.backward();
        return std::vector<Tensor>{loss, x.grad(), w.grad()};
      },
      {"loss", "dx", "dw"});
}

TEST_CASE("linear_cross_entropy: errors name the op and the shapes") {
  const Tensor x = zeros({2, 3, 4}), w = zeros({5, 4});
  check_error_case({"C mismatch", [&] { linear_cross_entropy(x, zeros({5, 3}), zeros({2, 3}, DType::Int64), 1); },
                    {"linear_cross_entropy", "[2, 3, 4]", "[5, 3]"}});
  check_error_case({"targets shape", [&] { linear_cross_entropy(x, w, zeros({2, 4}, DType::Int64), 1); },
                    {"linear_cross_entropy", "[2, 4]", "[2, 3]"}});
  check_error_case({"target out of range", [&] { linear_cross_entropy(x, w, full({2, 3}, 5, DType::Int64), 1); },
                    {"linear_cross_entropy", "target 5", "V = 5"}});
  check_error_case({"float targets", [&] { linear_cross_entropy(x, w, zeros({2, 3}), 1); },
                    {"linear_cross_entropy", "int32 or int64"}});
  check_error_case({"dtype mismatch", [&] { linear_cross_entropy(x, zeros({5, 4}, DType::Float64), zeros({2, 3}, DType::Int64), 1); },
                    {"linear_cross_entropy", "float64"}});
}
