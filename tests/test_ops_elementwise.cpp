// Elementwise ops: forward vs float64 reference, gradcheck, non-contiguous inputs, errors.
#include <doctest/doctest.h>

#include <cmath>

#include "support/op_harness.h"

using namespace hydra;
using namespace hydra::test;

namespace {

// The shapes every elementwise op is tried on: a scalar, size-1 dims, odd sizes.
const std::vector<Shape> kShapes = {{}, {1}, {7}, {1, 5}, {3, 1}, {3, 5}, {2, 3, 4}};

struct Unary {
  const char* name;
  std::function<Tensor(const Tensor&)> op;
  std::function<double(double)> ref;
  Fill fill;
};

struct Binary {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> op;
  std::function<double(double, double)> ref;
  Fill b_fill;
};

const std::vector<Unary> kUnary = {
    {"neg", [](const Tensor& x) { return neg(x); }, [](double v) { return -v; }, Fill::Normal},
    {"exp", [](const Tensor& x) { return hydra::exp(x); }, [](double v) { return std::exp(v); }, Fill::Normal},
    {"log", [](const Tensor& x) { return hydra::log(x); }, [](double v) { return std::log(v); }, Fill::Positive},
    {"sqrt", [](const Tensor& x) { return hydra::sqrt(x); }, [](double v) { return std::sqrt(v); }, Fill::Positive},
    {"rsqrt", [](const Tensor& x) { return rsqrt(x); }, [](double v) { return 1 / std::sqrt(v); }, Fill::Positive},
    {"pow 3", [](const Tensor& x) { return hydra::pow(x, 3.0); }, [](double v) { return v * v * v; }, Fill::Normal},
    {"pow 2", [](const Tensor& x) { return hydra::pow(x, 2.0); }, [](double v) { return v * v; }, Fill::Normal},
    {"pow -1.5", [](const Tensor& x) { return hydra::pow(x, -1.5); }, [](double v) { return std::pow(v, -1.5); },
     Fill::Positive},
    {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, [](double v) { return 1 / (1 + std::exp(-v)); },
     Fill::Normal},
    {"silu", [](const Tensor& x) { return silu(x); }, [](double v) { return v / (1 + std::exp(-v)); }, Fill::Normal},
    {"mul_scalar", [](const Tensor& x) { return mul_scalar(x, -2.5); }, [](double v) { return v * -2.5; },
     Fill::Normal},
    {"add_scalar", [](const Tensor& x) { return add_scalar(x, 0.75); }, [](double v) { return v + 0.75; },
     Fill::Normal},
};

const std::vector<Binary> kBinary = {
    {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }, [](double a, double b) { return a + b; },
     Fill::Normal},
    {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }, [](double a, double b) { return a - b; },
     Fill::Normal},
    {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }, [](double a, double b) { return a * b; },
     Fill::Normal},
    {"div", [](const Tensor& a, const Tensor& b) { return hydra::div(a, b); },
     [](double a, double b) { return a / b; }, Fill::Positive},
};

}  // namespace

TEST_CASE("unary elementwise ops") {
  for (const Unary& u : kUnary)
    for (const Shape& s : kShapes) {
      OpCase c{std::string(u.name) + " " + shape_str(s), {{s, u.fill}},
               [op = u.op](const Inputs& x) { return op(x[0]); },
               [ref = u.ref](const Inputs& x) { return ref_map1(x[0], ref); }};
      check_op_case(c);
    }
}

TEST_CASE("binary elementwise ops") {
  for (const Binary& b : kBinary)
    for (const Shape& s : kShapes) {
      OpCase c{std::string(b.name) + " " + shape_str(s), {{s}, {s, b.b_fill}},
               [op = b.op](const Inputs& x) { return op(x[0], x[1]); },
               [ref = b.ref](const Inputs& x) { return ref_map2(x[0], x[1], ref); }};
      check_op_case(c);
    }
}

TEST_CASE("an input used twice gets both gradients") {
  // d/dx (x * x) = 2x: the engine must sum the two contributions.
  OpCase c{"mul(x, x)", {{{4, 3}}}, [](const Inputs& x) { return mul(x[0], x[0]); },
           [](const Inputs& x) { return ref_map1(x[0], [](double v) { return v * v; }); }};
  check_op_case(c);
}

TEST_CASE("explicit broadcasting: add(a, broadcast_to(b)) and its reduced gradient") {
  OpCase c{"add broadcast [3,4] + [4]", {{{3, 4}}, {{4}}},
           [](const Inputs& x) { return add(x[0], broadcast_to(x[1], {3, 4})); },
           [](const Inputs& x) {
             std::vector<double> a = x[0].to_vector<double>(), b = x[1].to_vector<double>();
             for (size_t i = 0; i < a.size(); ++i) a[i] += b[i % 4];
             return ref_tensor({3, 4}, a);
           }};
  check_op_case(c);
  OpCase m{"mul broadcast [2,3,4] * [3,1]", {{{2, 3, 4}}, {{3, 1}}},
           [](const Inputs& x) { return mul(x[0], broadcast_to(x[1], {2, 3, 4})); },
           [](const Inputs& x) {
             std::vector<double> a = x[0].to_vector<double>(), b = x[1].to_vector<double>();
             for (size_t i = 0; i < a.size(); ++i) a[i] *= b[(i / 4) % 3];
             return ref_tensor({2, 3, 4}, a);
           }};
  check_op_case(m);
  OpCase d{"div broadcast [5,2] / [1,2]", {{{5, 2}}, {{1, 2}, Fill::Positive}},
           [](const Inputs& x) { return hydra::div(x[0], broadcast_to(x[1], {5, 2})); },
           [](const Inputs& x) {
             std::vector<double> a = x[0].to_vector<double>(), b = x[1].to_vector<double>();
             for (size_t i = 0; i < a.size(); ++i) a[i] /= b[i % 2];
             return ref_tensor({5, 2}, a);
           }};
  check_op_case(d);
}

TEST_CASE("cast between float32 and float64 carries the gradient") {
  Tensor x = Generator(3).normal({4, 5}, 0, 1, DType::Float64).set_requires_grad();
  Tensor y = cast(x, DType::Float32);
  CHECK(y.dtype() == DType::Float32);
  Tensor z = cast(mul_scalar(y, 3.0), DType::Float64);
  z.backward(ones({4, 5}, DType::Float64));
  for (double g : x.grad().to_vector<double>()) CHECK(g == 3.0);
  Tensor i = cast(x, DType::Int64);
  CHECK(!i.requires_grad());
}

TEST_CASE("elementwise errors name the op and both shapes") {
  Tensor a = zeros({2, 3}), b = zeros({3, 2}), d = zeros({2, 3}, DType::Float64), idx = zeros({2, 3}, DType::Int64);
  std::vector<ErrorCase> cases = {
      {"add shape", [&] { add(a, b); }, {"add", "[2, 3]", "[3, 2]", "broadcast_to"}},
      {"sub shape", [&] { sub(a, b); }, {"sub", "[2, 3]", "[3, 2]"}},
      {"mul shape", [&] { mul(a, zeros({6})); }, {"mul", "[2, 3]", "[6]"}},
      {"div shape", [&] { hydra::div(a, zeros({2, 1})); }, {"div", "[2, 3]", "[2, 1]"}},
      {"dtype mismatch", [&] { add(a, d); }, {"add", "float32", "float64"}},
      {"int input", [&] { hydra::exp(idx); }, {"exp", "int64"}},
      {"int requires grad", [&] { Tensor t = zeros({2}, DType::Int64); t.set_requires_grad(); }, {"int64"}},
  };
  for (const ErrorCase& c : cases) check_error_case(c);
  // Every unary op refuses integer input, naming itself and the dtype.
  for (const Unary& u : kUnary) {
    std::string name = std::string(u.name).substr(0, std::string(u.name).find(' '));
    check_error_case({std::string(u.name) + " on int64", [&] { u.op(idx); }, {name, "int64"}});
  }
}
