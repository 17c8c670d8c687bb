// sum / mean / max / argmax: forward vs float64 loops, gradcheck, non-contiguous inputs, errors, long
// sums across chunk boundaries, and bit-identical results for any thread count.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "support/op_harness.h"
#include "support/threads.h"
#include "tensor/parallel.h"
#include "tensor/reduce.h"

using namespace hydra;
using namespace hydra::test;

namespace {

using Dims = std::vector<int64_t>;

bool listed(const Dims& dims, int64_t d, int64_t nd) {
  for (int64_t e : dims)
    if ((e < 0 ? e + nd : e) == d) return true;
  return false;
}

// The output shape of a reduction over dims, written out independently of the library.
Shape ref_out_shape(const Shape& s, const Dims& dims, bool keepdim) {
  Shape out;
  const int64_t nd = static_cast<int64_t>(s.size());
  for (int64_t d = 0; d < nd; ++d) {
    if (!listed(dims, d, nd))
      out.push_back(s[d]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

// Where input element `in` lands in the output of a reduction over dims.
int64_t ref_out_index(const std::vector<int64_t>& in, const Shape& s, const Dims& dims, bool keepdim) {
  std::vector<int64_t> out;
  const int64_t nd = static_cast<int64_t>(s.size());
  for (int64_t d = 0; d < nd; ++d) {
    if (!listed(dims, d, nd))
      out.push_back(in[d]);
    else if (keepdim)
      out.push_back(0);
  }
  return ravel(out, ref_out_shape(s, dims, keepdim));
}

// Σ (or mean) over dims, one input element at a time, in float64.
Tensor ref_sum(const Tensor& x, const Dims& dims, bool keepdim, bool mean) {
  const Shape out_shape = ref_out_shape(x.shape(), dims, keepdim);
  std::vector<double> xv = x.to_vector<double>(), out(shape_numel(out_shape), 0.0);
  for (size_t e = 0; e < xv.size(); ++e)
    out[ref_out_index(unravel_index(static_cast<int64_t>(e), x.shape()), x.shape(), dims, keepdim)] += xv[e];
  if (mean) {
    const double count = static_cast<double>(xv.size()) / static_cast<double>(out.size());
    for (double& v : out) v /= count;
  }
  return ref_tensor(out_shape, out);
}

// Max (or the position of the first max) along dim, in plain loops.
Tensor ref_max(const Tensor& x, int64_t dim, bool keepdim, bool arg) {
  const int64_t d = dim < 0 ? dim + x.dim() : dim;
  const Shape out_shape = ref_out_shape(x.shape(), {d}, keepdim);
  std::vector<double> xv = x.to_vector<double>(), best(shape_numel(out_shape), -INFINITY), where(best.size(), -1);
  for (size_t e = 0; e < xv.size(); ++e) {
    std::vector<int64_t> p = unravel_index(static_cast<int64_t>(e), x.shape());
    int64_t o = ref_out_index(p, x.shape(), {d}, keepdim);
    if (xv[e] > best[o]) {
      best[o] = xv[e];
      where[o] = static_cast<double>(p[d]);
    }
  }
  return ref_tensor(out_shape, arg ? where : best);
}

std::string dims_str(const Dims& dims) { return shape_str(dims); }

struct SumCase {
  Shape shape;
  Dims dims;
};

// First / middle / last / negative / several / scattered dims, size-1 dims and odd sizes.
const std::vector<SumCase> kSumCases = {
    {{7}, {0}},          {{7}, {-1}},        {{3, 5}, {0}},       {{3, 5}, {1}},        {{3, 5}, {0, 1}},
    {{3, 5, 7}, {0}},    {{3, 5, 7}, {1}},   {{3, 5, 7}, {2}},    {{3, 5, 7}, {-1}},    {{3, 5, 7}, {-2}},
    {{3, 5, 7}, {0, 1}}, {{3, 5, 7}, {1, 2}}, {{3, 5, 7}, {0, 2}}, {{3, 5, 7}, {-1, 0}}, {{3, 5, 7}, {2, 0, 1}},
    {{1, 4, 1}, {0}},    {{1, 4, 1}, {2}},   {{1, 4, 1}, {0, 2}}, {{2, 1, 3, 2}, {1, 3}}, {{2, 3, 1, 2}, {0, 2}},
};

}  // namespace

TEST_CASE("sum and mean over dims, with and without keepdim") {
  int cases = 0;
  for (const SumCase& s : kSumCases)
    for (bool keepdim : {false, true})
      for (bool is_mean : {false, true}) {
        OpCase c{std::string(is_mean ? "mean " : "sum ") + shape_str(s.shape) + " dims " + dims_str(s.dims) +
                     (keepdim ? " keepdim" : ""),
                 {{s.shape}},
                 [=](const Inputs& x) { return is_mean ? mean(x[0], s.dims, keepdim) : sum(x[0], s.dims, keepdim); },
                 [=](const Inputs& x) { return ref_sum(x[0], s.dims, keepdim, is_mean); }};
        check_op_case(c);
        ++cases;
      }
  CHECK(cases == 80);
}

TEST_CASE("sum and mean of every element, including a 0-d tensor") {
  for (const Shape& s : std::vector<Shape>{{}, {1}, {7}, {1, 5}, {3, 5, 7}})
    for (bool is_mean : {false, true}) {
      OpCase c{std::string(is_mean ? "mean all " : "sum all ") + shape_str(s), {{s}},
               [=](const Inputs& x) { return is_mean ? mean(x[0]) : sum(x[0]); },
               [=](const Inputs& x) {
                 Dims all;
                 for (int64_t d = 0; d < x[0].dim(); ++d) all.push_back(d);
                 return ref_sum(x[0], all, false, is_mean);
               }};
      check_op_case(c);
    }
}

TEST_CASE("max and argmax along each dim (distinct values: the gradient is defined)") {
  const std::vector<Shape> shapes = {{7}, {1, 5}, {4, 1}, {3, 5}, {3, 5, 7}, {2, 1, 3}};
  for (const Shape& s : shapes) {
    const int64_t nd = static_cast<int64_t>(s.size());
    for (int64_t dim = -nd; dim < nd; ++dim)
      for (bool keepdim : {false, true}) {
        const std::string where = shape_str(s) + " dim " + std::to_string(dim) + (keepdim ? " keepdim" : "");
        OpCase m{"max " + where, {{s, Fill::Distinct}},
                 [=](const Inputs& x) { return hydra::max(x[0], dim, keepdim); },
                 [=](const Inputs& x) { return ref_max(x[0], dim, keepdim, false); }};
        check_op_case(m);
        OpCase a{"argmax " + where, {{s, Fill::Distinct}},
                 [=](const Inputs& x) { return argmax(x[0], dim, keepdim); },
                 [=](const Inputs& x) { return ref_max(x[0], dim, keepdim, true); }};
        a.check_grad = false;
        check_op_case(a);
      }
  }
}

TEST_CASE("max and argmax pick the first of tied maxima; the gradient goes there only") {
  Tensor x = from_vector<double>({1, 3, 3, 2, 2, 1}, {2, 3}).set_requires_grad();
  CHECK(argmax(x, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 0});
  CHECK(argmax(x, 1).dtype() == DType::Int64);
  CHECK(!argmax(x, 1).requires_grad());
  Tensor m = hydra::max(x, 1);
  CHECK(m.to_vector<double>() == std::vector<double>{3, 2});
  m.backward(from_vector<double>({10, 20}, {2}));
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 10, 0, 20, 0, 0});
}

TEST_CASE("max propagates NaN and argmax points at the first NaN") {
  Tensor x = from_vector<float>({1, NAN, 5, NAN, 2, 0}, {2, 3});
  std::vector<float> m = hydra::max(x, 1).to_vector<float>();
  CHECK(std::isnan(m[0]));
  CHECK(std::isnan(m[1]));
  CHECK(argmax(x, 1).to_vector<int64_t>() == std::vector<int64_t>{1, 0});
}

TEST_CASE("integer tensors: max / argmax work, sum is an error") {
  Tensor t = from_vector<int64_t>({4, 9, 9, 1}, {4});
  CHECK(hydra::max(t, 0).item<int64_t>() == 9);
  CHECK(argmax(t, 0).item<int64_t>() == 1);
  check_error_case({"sum int", [&] { sum(t); }, {"sum", "int64", "[4]"}});
}

TEST_CASE("edge shapes: no dims listed is a copy; empty dims give 0 (sum) and NaN (mean)") {
  Tensor x = Generator(1).normal({2, 3}, 0, 1, DType::Float64).set_requires_grad();
  Tensor same = sum(x, {});
  CHECK(same.shape() == Shape{2, 3});
  CHECK(same.to_vector<double>() == x.to_vector<double>());
  same.backward(ones({2, 3}, DType::Float64));
  CHECK(x.grad().to_vector<double>() == std::vector<double>(6, 1.0));

  Tensor empty_rows = zeros({0, 3});
  CHECK(sum(empty_rows, {0}).to_vector<float>() == std::vector<float>(3, 0.0f));
  for (float v : mean(empty_rows, {0}).to_vector<float>()) CHECK(std::isnan(v));
  CHECK(sum(empty_rows, {1}).shape() == Shape{0});
  CHECK(sum(empty_rows).item<float>() == 0.0f);
}

TEST_CASE("long sums across chunk boundaries match float64 loops") {
  // Rows longer than kSumChunk are summed in several chunks; check every layout of (outer, n, inner).
  const int64_t n = 2 * kernels::kSumChunk + 123;
  for (const SumCase& s : std::vector<SumCase>{{{n}, {0}}, {{n, 3}, {0}}, {{2, n}, {1}}, {{2, n, 3}, {1}},
                                                {{3, n, 2}, {0, 2}}}) {
    OpCase c{"sum " + shape_str(s.shape) + " dims " + dims_str(s.dims), {{s.shape}},
             [=](const Inputs& x) { return sum(x[0], s.dims); },
             [=](const Inputs& x) { return ref_sum(x[0], s.dims, false, false); }};
    c.forward_tol = 1e-11;  // float64 adds ~3e4 terms in a different order from the reference
    c.float32_tol = 1e-5;   // the float32 inputs carry their own rounding (~6e-8 |x| each) into a long sum
    c.check_grad = false;   // too many outputs x inputs for a full Jacobian; the rule is tested above
    check_op_case(c);
  }
}

TEST_CASE("sums are bit-identical for any thread count") {
  Tensor x = Generator(42).normal({3'000'000}, 0, 1, DType::Float32);
  Tensor m = Generator(43).normal({3000, 1000}, 0, 1, DType::Float32);
  auto run = [&] { return std::vector<Tensor>{sum(x), mean(x), sum(m, {0}), sum(m, {1}), sum(m, {0, 1})}; };
  expect_thread_invariant(run, {"sum(x)", "mean(x)", "sum(m, 0)", "sum(m, 1)", "sum(m, {0, 1})"});
  // And the full sum is accurate: float32 values added in double.
  double want = 0;
  for (float v : x.to_vector<float>()) want += v;
  CHECK(sum(x).item<double>() == doctest::Approx(want).epsilon(1e-6));
}

TEST_CASE("reduction errors name the op, the dim and the shape") {
  Tensor a = zeros({2, 3}), scalar = zeros({}), no_cols = zeros({2, 0});
  std::vector<ErrorCase> cases = {
      {"sum dim", [&] { sum(a, {3}); }, {"sum: dim 3 is out of range for a tensor with 2 dims", "[2, 3]"}},
      {"sum negative dim", [&] { sum(a, {-3}); }, {"sum", "dim -3", "[2, 3]"}},
      {"sum repeated dim", [&] { sum(a, {1, -1}); }, {"sum", "dim 1 appears twice", "[1, -1]", "[2, 3]"}},
      {"mean dim", [&] { mean(a, {0, 2}, true); }, {"mean", "dim 2", "[2, 3]"}},
      {"mean int", [&] { mean(zeros({2}, DType::Int32)); }, {"mean", "int32", "[2]"}},
      {"sum of a scalar over a dim", [&] { sum(scalar, {0}); }, {"sum", "dim 0", "0 dims", "[]"}},
      {"max dim", [&] { hydra::max(a, 2); }, {"max", "dim 2", "[2, 3]"}},
      {"max empty dim", [&] { hydra::max(no_cols, 1); }, {"max", "size 0", "[2, 0]"}},
      {"argmax dim", [&] { argmax(a, -3); }, {"argmax", "dim -3", "[2, 3]"}},
      {"argmax empty dim", [&] { argmax(no_cols, -1); }, {"argmax", "size 0", "[2, 0]"}},
  };
  for (const ErrorCase& c : cases) check_error_case(c);
}
