// softmax / log_softmax: forward vs float64 loops along every dim, gradcheck, non-contiguous inputs,
// stability with large inputs, errors, and bit-identical results for any thread count.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "support/op_harness.h"
#include "support/threads.h"
#include "tensor/parallel.h"

using namespace hydra;
using namespace hydra::test;

namespace {

// softmax (or log_softmax) along dim, one output element at a time: walk its row, in float64.
Tensor ref_softmax(const Tensor& x, int64_t dim, bool log) {
  const int64_t d = dim < 0 ? dim + x.dim() : dim;
  std::vector<double> xv = x.to_vector<double>(), out(xv.size());
  for (size_t e = 0; e < xv.size(); ++e) {
    std::vector<int64_t> p = unravel_index(static_cast<int64_t>(e), x.shape());
    auto at = [&](int64_t k) {  // x at p with p[d] = k
      std::vector<int64_t> q = p;
      q[d] = k;
      return xv[ravel(q, x.shape())];
    };
    double m = -INFINITY, s = 0;
    for (int64_t k = 0; k < x.size(d); ++k) m = std::max(m, at(k));
    for (int64_t k = 0; k < x.size(d); ++k) s += std::exp(at(k) - m);
    out[e] = log ? xv[e] - m - std::log(s) : std::exp(xv[e] - m) / s;
  }
  return ref_tensor(x.shape(), out);
}

}  // namespace

TEST_CASE("softmax and log_softmax along every dim (also negative)") {
  const std::vector<Shape> shapes = {{7}, {1, 4}, {4, 1}, {3, 5}, {3, 5, 7}, {2, 1, 3}};
  int cases = 0;
  for (const Shape& s : shapes) {
    const int64_t nd = static_cast<int64_t>(s.size());
    for (int64_t dim = -nd; dim < nd; ++dim)
      for (bool log : {false, true}) {
        OpCase c{std::string(log ? "log_softmax " : "softmax ") + shape_str(s) + " dim " + std::to_string(dim),
                 {{s}},
                 [=](const Inputs& x) { return log ? log_softmax(x[0], dim) : softmax(x[0], dim); },
                 [=](const Inputs& x) { return ref_softmax(x[0], dim, log); }};
        check_op_case(c);
        ++cases;
      }
  }
  CHECK(cases == 52);
}

TEST_CASE("softmax is stable: huge inputs give the same result as shifted ones") {
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor x = cast(from_vector<double>({1000, 1001, 1002, -1000, -999, -998}, {2, 3}), dt);
    Tensor small = cast(from_vector<double>({0, 1, 2, 0, 1, 2}, {2, 3}), dt);
    std::vector<double> got = softmax(x, -1).to_vector<double>(), want = softmax(small, -1).to_vector<double>();
    std::vector<double> lgot = log_softmax(x, 1).to_vector<double>(), lwant = log_softmax(small, 1).to_vector<double>();
    for (size_t i = 0; i < got.size(); ++i) {
      CHECK(got[i] == want[i]);  // x - max is exact here, so the results are too
      CHECK(lgot[i] == lwant[i]);
    }
  }
}

TEST_CASE("softmax rows sum to 1 and the gradient of a constant upstream vanishes") {
  Tensor x = Generator(3).normal({6, 33}, 0, 3, DType::Float64).set_requires_grad();
  Tensor y = softmax(x, 1);
  for (int64_t r = 0; r < 6; ++r) {
    double s = 0;
    for (double v : select(y, 0, r).to_vector<double>()) s += v;
    CHECK(s == doctest::Approx(1.0).epsilon(1e-14));
  }
  // Σ_k y_k = 1 whatever x, so d/dx Σ_k y_k = 0.
  y.backward(ones({6, 33}, DType::Float64));
  for (double g : x.grad().to_vector<double>()) CHECK(std::abs(g) < 1e-15);
}

TEST_CASE("softmax and log_softmax are bit-identical for any thread count") {
  Tensor x = Generator(7).normal({512, 4096}, 0, 2, DType::Float32);
  Tensor dy = Generator(8).normal({512, 4096}, 0, 1, DType::Float32);
  auto run = [&] {
    std::vector<Tensor> out;
    for (int64_t dim : {-1, 0})
      for (bool log : {false, true}) {
        Tensor xs = x.detach().set_requires_grad();
        Tensor y = log ? log_softmax(xs, dim) : softmax(xs, dim);
        y.backward(dy);
        out.push_back(y);
        out.push_back(xs.grad());
      }
    return out;
  };
  expect_thread_invariant(run);
}

TEST_CASE("softmax errors name the op, the dim and the shape") {
  Tensor a = zeros({2, 3});
  std::vector<ErrorCase> cases = {
      {"softmax dim", [&] { softmax(a, 2); }, {"softmax: dim 2 is out of range for a tensor with 2 dims", "[2, 3]"}},
      {"log_softmax dim", [&] { log_softmax(a, -3); }, {"log_softmax", "dim -3", "[2, 3]"}},
      {"softmax of a 0-d tensor", [&] { softmax(zeros({}), 0); }, {"softmax", "0 dims", "[]"}},
      {"softmax int", [&] { softmax(zeros({4}, DType::Int64), 0); }, {"softmax", "int64", "[4]"}},
      {"log_softmax int", [&] { log_softmax(zeros({4, 2}, DType::Int32), 0); }, {"log_softmax", "int32", "[4, 2]"}},
  };
  for (const ErrorCase& c : cases) check_error_case(c);
}
