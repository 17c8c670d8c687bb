// matmul: 2-D and batched, transposed views passed as BLAS flags, gradients, errors, determinism.
#include <doctest/doctest.h>

#include <cstring>

#include "support/op_harness.h"
#include "support/threads.h"
#include "tensor/gemm.h"
#include "tensor/parallel.h"

using namespace hydra;
using namespace hydra::test;

namespace {

// Naive triple loop over the last two dims, batched over the leading ones.
Tensor ref_matmul(const Tensor& a, const Tensor& b) {
  const int64_t nd = a.dim();
  const int64_t M = a.shape()[nd - 2], K = a.shape()[nd - 1], N = b.shape()[nd - 1];
  const int64_t batch = a.numel() / (M * K);
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>(), out(batch * M * N, 0.0);
  for (int64_t p = 0; p < batch; ++p)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += av[p * M * K + i * K + k] * bv[p * K * N + k * N + j];
        out[p * M * N + i * N + j] = s;
      }
  Shape shape(a.shape().begin(), a.shape().end() - 2);
  shape.push_back(M);
  shape.push_back(N);
  return ref_tensor(shape, out);
}

OpCase matmul_case(const Shape& a, const Shape& b) {
  OpCase c{"matmul " + shape_str(a) + " @ " + shape_str(b), {{a}, {b}},
           [](const Inputs& x) { return matmul(x[0], x[1]); },
           [](const Inputs& x) { return ref_matmul(x[0], x[1]); }};
  // BLAS sums in its own order: compare at rounding level, and allow the transposed-layout run to
  // round differently from the dense one.
  c.forward_tol = 1e-13;
  c.float32_tol = 1e-5;
  c.layout_exact = false;
  return c;
}

}  // namespace

TEST_CASE("matmul 2-D and batched against a naive loop") {
  for (auto [a, b] : std::vector<std::pair<Shape, Shape>>{{{3, 5}, {5, 4}},
                                                          {{1, 7}, {7, 1}},
                                                          {{6, 1}, {1, 3}},
                                                          {{1, 1}, {1, 1}},
                                                          {{2, 3, 5}, {2, 5, 2}},
                                                          {{2, 1, 3, 4}, {2, 1, 4, 3}},
                                                          {{4, 1, 2}, {4, 2, 1}}})
    check_op_case(matmul_case(a, b));
}

TEST_CASE("matmul with transposed views uses them in place") {
  // x @ wᵀ, the Linear layer's product, with w stored [out, in].
  OpCase c{"x @ w^T", {{{4, 6}}, {{5, 6}}}, [](const Inputs& x) { return matmul(x[0], transpose(x[1], 0, 1)); },
           [](const Inputs& x) {
             return ref_matmul(x[0], ref_tensor({6, 5}, contiguous(transpose(x[1], 0, 1)).to_vector<double>()));
           }};
  c.forward_tol = 1e-13;
  c.float32_tol = 1e-5;
  c.layout_exact = false;
  check_op_case(c);
}

TEST_CASE("a large matmul is tiled across threads with bit-identical results") {
  Generator gen(11);
  Tensor a = gen.normal({700, 300}), b = gen.normal({300, 1500});
  Tensor c1, c1t;
  {
    ScopedThreads one(1);
    c1 = matmul(a, b);
    c1t = matmul(transpose(b, 0, 1), transpose(a, 0, 1));
  }
  ScopedThreads two(2);
  // Repeated, because a BLAS that is not safe to call from several threads at once shows up as results
  // that change from run to run (Debian's serial OpenBLAS did exactly that).
  for (int rep = 0; rep < 5; ++rep) {
    Tensor c2 = matmul(a, b);
    Tensor c2t = matmul(transpose(b, 0, 1), transpose(a, 0, 1));
    CHECK(std::memcmp(c1.data<float>(), c2.data<float>(), sizeof(float) * c1.numel()) == 0);
    CHECK(std::memcmp(c1t.data<float>(), c2t.data<float>(), sizeof(float) * c1t.numel()) == 0);
  }
  // Many small products in parallel (the batched path) must be right, not just repeatable.
  Tensor xa = gen.normal({64, 24, 40}), xb = gen.normal({64, 40, 16});
  Tensor batched = matmul(xa, xb);
  for (int64_t i : {0, 31, 63}) {
    Tensor one = matmul(select(xa, 0, i), select(xb, 0, i));
    CHECK(std::memcmp(one.data<float>(), select(batched, 0, i).data<float>(), sizeof(float) * one.numel()) == 0);
  }
  CHECK(kernels::gemm_runs_in_parallel());
  // And it is right: compare a few entries with a double-precision dot product.
  std::vector<double> av = a.to_vector<double>(), bv = b.to_vector<double>(), cv = c1.to_vector<double>();
  for (int64_t i : {0, 255, 256, 699})
    for (int64_t j : {0, 1023, 1024, 1499}) {
      double s = 0;
      for (int64_t k = 0; k < 300; ++k) s += av[i * 300 + k] * bv[k * 1500 + j];
      CHECK(cv[i * 1500 + j] == doctest::Approx(s).epsilon(1e-5));
    }
}

TEST_CASE("matmul errors print both shapes") {
  Tensor a = zeros({2, 3}), b = zeros({4, 5});
  std::vector<ErrorCase> cases = {
      {"inner dims", [&] { matmul(a, b); }, {"matmul", "[2, 3]", "[4, 5]", "inner dims"}},
      {"1-D", [&] { matmul(zeros({3}), b); }, {"matmul", "[3]", "[4, 5]"}},
      {"batch dims", [&] { matmul(zeros({2, 2, 3}), zeros({3, 3, 4})); }, {"matmul", "[2, 2, 3]", "[3, 3, 4]"}},
      {"rank", [&] { matmul(zeros({2, 2, 3}), zeros({3, 4})); }, {"matmul", "[2, 2, 3]", "[3, 4]"}},
      {"dtype", [&] { matmul(a, zeros({3, 4}, DType::Float64)); }, {"matmul", "float32", "float64"}},
      {"int", [&] { matmul(zeros({2, 3}, DType::Int64), zeros({3, 4}, DType::Int64)); }, {"matmul", "int64"}},
  };
  for (const ErrorCase& c : cases) check_error_case(c);
}
