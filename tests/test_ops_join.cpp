// concat and stack: forward vs float64 loops, gradcheck, non-contiguous inputs, inputs that need no
// gradient, and errors naming the op, the offending tensor's position and both shapes.
#include <doctest/doctest.h>

#include <sstream>

#include "support/op_harness.h"

using namespace hydra;
using namespace hydra::test;

namespace {

// Out element p comes from the input whose range along d holds p[d], at p[d] minus the range start.
Tensor ref_concat(const Inputs& xs, int64_t dim) {
  const int64_t d = dim < 0 ? dim + xs[0].dim() : dim;
  Shape out_shape = xs[0].shape();
  out_shape[d] = 0;
  for (const Tensor& x : xs) out_shape[d] += x.size(d);
  std::vector<double> out(shape_numel(out_shape));
  for (size_t e = 0; e < out.size(); ++e) {
    std::vector<int64_t> p = unravel_index(static_cast<int64_t>(e), out_shape);
    size_t k = 0;
    while (p[d] >= xs[k].size(d)) p[d] -= xs[k++].size(d);
    out[e] = xs[k].to_vector<double>()[ravel(p, xs[k].shape())];
  }
  return ref_tensor(out_shape, out);
}

// Out element p is input p[d] at p without its d coordinate.
Tensor ref_stack(const Inputs& xs, int64_t dim) {
  const int64_t nd = xs[0].dim() + 1;
  const int64_t d = dim < 0 ? dim + nd : dim;
  Shape out_shape = xs[0].shape();
  out_shape.insert(out_shape.begin() + d, static_cast<int64_t>(xs.size()));
  std::vector<double> out(shape_numel(out_shape));
  for (size_t e = 0; e < out.size(); ++e) {
    std::vector<int64_t> p = unravel_index(static_cast<int64_t>(e), out_shape);
    const int64_t k = p[d];
    p.erase(p.begin() + d);
    out[e] = xs[k].to_vector<double>()[ravel(p, xs[k].shape())];
  }
  return ref_tensor(out_shape, out);
}

// "concat 3 [2, 3] dim -1". (Built with a stream: GCC 12 warns falsely on chains of string +.)
std::string case_name(const char* what, const Shape& s, int64_t dim) {
  std::ostringstream os;
  os << what << " " << shape_str(s) << " dim " << dim;
  return os.str();
}

// `base` with dim d resized to `size`.
Shape with_size(Shape base, int64_t d, int64_t size) {
  base[d] = size;
  return base;
}

}  // namespace

TEST_CASE("concat: one and three inputs along every dim (also negative), size-1 parts, a constant input") {
  const std::vector<Shape> shapes = {{5}, {2, 3}, {1, 4}, {3, 1}, {2, 3, 4}, {2, 1, 3}};
  for (const Shape& s : shapes) {
    const int64_t nd = static_cast<int64_t>(s.size());
    for (int64_t dim = -nd; dim < nd; ++dim) {
      const int64_t d = dim < 0 ? dim + nd : dim;
      // Parts of sizes 2, 1 and 3 along dim: unequal, with a size-1 part in the middle.
      OpCase three{case_name("concat 3", s, dim),
                   {{with_size(s, d, 2)}, {with_size(s, d, 1)}, {with_size(s, d, 3)}},
                   [dim](const Inputs& x) { return concat({x[0], x[1], x[2]}, dim); },
                   [dim](const Inputs& x) { return ref_concat(x, dim); }};
      check_op_case(three);
      // The middle input needs no gradient: the backward must skip it and still place the last one.
      OpCase constant{case_name("concat 3, middle constant", s, dim),
                      {{s}, {with_size(s, d, 3), Fill::Normal, 0, DType::Int64, false}, {with_size(s, d, 2)}},
                      [dim](const Inputs& x) { return concat({x[0], x[1], x[2]}, dim); },
                      [dim](const Inputs& x) { return ref_concat(x, dim); }};
      check_op_case(constant);
      OpCase one{case_name("concat 1", s, dim), {{s}}, [dim](const Inputs& x) { return concat({x[0]}, dim); },
                 [dim](const Inputs& x) { return ref_concat(x, dim); }};
      check_op_case(one);
    }
  }
}

TEST_CASE("stack: scalars and tensors, every new position (dim == ndim, negative dims)") {
  const std::vector<Shape> shapes = {{}, {1}, {5}, {2, 3}, {3, 1}, {2, 1, 3}};
  for (const Shape& s : shapes) {
    const int64_t nd = static_cast<int64_t>(s.size()) + 1;  // dims of the output
    for (int64_t dim = -nd; dim < nd; ++dim) {
      OpCase three{case_name("stack 3", s, dim), {{s}, {s}, {s}},
                   [dim](const Inputs& x) { return stack({x[0], x[1], x[2]}, dim); },
                   [dim](const Inputs& x) { return ref_stack(x, dim); }};
      check_op_case(three);
      OpCase one{case_name("stack 1", s, dim), {{s}}, [dim](const Inputs& x) { return stack({x[0]}, dim); },
                 [dim](const Inputs& x) { return ref_stack(x, dim); }};
      check_op_case(one);
    }
  }
}

TEST_CASE("concat and stack: an input used twice gets both gradients") {
  OpCase c{"concat(x, x)", {{{2, 3}}}, [](const Inputs& x) { return concat({x[0], x[0]}, 1); },
           [](const Inputs& x) { return ref_concat({x[0], x[0]}, 1); }};
  check_op_case(c);
  OpCase s{"stack(x, y, x)", {{{3}}, {{3}}}, [](const Inputs& x) { return stack({x[0], x[1], x[0]}, 0); },
           [](const Inputs& x) { return ref_stack({x[0], x[1], x[0]}, 0); }};
  check_op_case(s);
}

TEST_CASE("concat: integer tensors and empty parts") {
  Tensor a = from_vector<int32_t>({1, 2, 3, 4}, {2, 2}), b = from_vector<int32_t>({5, 6}, {2, 1});
  Tensor ab = concat({a, b}, -1);
  CHECK(ab.dtype() == DType::Int32);
  CHECK(ab.to_vector<int32_t>() == std::vector<int32_t>{1, 2, 5, 3, 4, 6});

  Tensor x = ones({2, 3}).set_requires_grad(), e = zeros({0, 3}).set_requires_grad();
  Tensor xe = concat({e, x, e}, 0);
  CHECK(xe.shape() == Shape{2, 3});
  xe.backward(full({2, 3}, 2.0));
  CHECK(x.grad().to_vector<float>() == std::vector<float>(6, 2.0f));
  CHECK(e.grad().shape() == Shape{0, 3});
}

TEST_CASE("join errors name the op, the offending tensor and both shapes") {
  Tensor a = zeros({2, 3}), b = zeros({2, 4}), c = zeros({3, 2});
  std::vector<ErrorCase> cases = {
      {"concat empty", [] { concat({}, 0); }, {"concat", "empty"}},
      {"concat shape", [&] { concat({a, a, b}, 0); }, {"concat", "tensor 2", "[2, 4]", "[2, 3]", "dim 0"}},
      {"concat rank", [&] { concat({a, zeros({6})}, 0); }, {"concat", "tensor 1", "[6]", "[2, 3]"}},
      {"concat dtype", [&] { concat({a, zeros({2, 3}, DType::Float64)}, 0); },
       {"concat", "tensor 1", "float64", "float32"}},
      {"concat dim", [&] { concat({a, a}, 2); }, {"concat", "dim 2"}},
      {"concat scalar", [] { concat({zeros({}), zeros({})}, 0); }, {"concat", "dim 0"}},
      {"stack empty", [] { stack({}, 0); }, {"stack", "empty"}},
      {"stack shape", [&] { stack({a, a, c}, 0); }, {"stack", "tensor 2", "[3, 2]", "[2, 3]"}},
      {"stack dim", [&] { stack({a, a}, 3); }, {"stack", "dim 3"}},
      {"stack negative dim", [&] { stack({a, a}, -4); }, {"stack", "dim -4"}},
      {"stack dtype", [&] { stack({a, zeros({2, 3}, DType::Int64)}, 0); }, {"stack", "int64", "float32"}},
  };
  for (const ErrorCase& e : cases) check_error_case(e);
}
