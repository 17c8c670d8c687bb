// The table-driven op test harness.
//
// Each op family registers its cases once, in tests/test_ops_<family>.cpp:
//
//   OpCase{"mul [2,3]", {{{2, 3}}, {{2, 3}}},
//          [](const Inputs& x) { return mul(x[0], x[1]); },
//          [](const Inputs& x) { return ref_map2(x[0], x[1], [](double a, double b) { return a * b; }); }}
//
// and check_op_case() derives four checks from it:
//   1. forward: float64 result vs the reference (independent naive loops in float64), and the float32
//      result vs the same reference at float32 tolerance;
//   2. gradient: gradcheck in float64 (central differences, full Jacobian) on every differentiable input;
//   3. layout: every input replaced by a non-contiguous view holding the same values gives the same
//      forward result (bit-identical unless the case says otherwise) and passes gradcheck too;
//   4. errors: ErrorCase lists calls that must throw hydra::Error with a message containing given text
//      (the op's name and both shapes).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "autograd/ops.h"

namespace hydra::test {

using Inputs = std::vector<Tensor>;
using OpFn = std::function<Tensor(const Inputs&)>;

enum class Fill {
  Normal,    // N(0, 1)
  Positive,  // uniform in [0.5, 2): for log, sqrt, rsqrt, div denominators
  Index,     // integers in [0, index_high): indices, targets
  Distinct,  // N(0,1) values with no ties (for max/argmax, where a tie has no derivative)
};

struct InputSpec {
  Shape shape;
  Fill fill = Fill::Normal;
  int64_t index_high = 0;            // for Fill::Index
  DType index_dtype = DType::Int64;  // for Fill::Index
  bool differentiable = true;        // float inputs only; index inputs never are
};

struct OpCase {
  std::string name;
  std::vector<InputSpec> inputs;
  OpFn op;         // the op under test
  OpFn reference;  // float64 inputs -> float64 (or int64) output, written independently of `op`
  double forward_tol = 1e-12;  // |op - ref| <= tol * max(1, |ref|) in float64
  double float32_tol = 2e-6;   // the same bound for the float32 run
  double grad_atol = 1e-6;
  double grad_rtol = 1e-5;
  bool check_grad = true;
  // Non-contiguous inputs give bit-identical forward results unless this is set (then forward_tol).
  bool layout_exact = true;
};

struct ErrorCase {
  std::string name;
  std::function<void()> call;
  std::vector<std::string> must_contain;  // e.g. {"matmul", "[2, 3]", "[4, 5]"}
};

void check_op_case(const OpCase& c);
void check_error_case(const ErrorCase& c);

// Inputs for a case: deterministic values from `seed`; float inputs in `dtype`. With non_contiguous,
// every input of rank >= 1 is a strided view (transposed storage for rank >= 2, every other element
// for rank 1) holding exactly the values of the contiguous version.
Inputs make_inputs(const std::vector<InputSpec>& specs, DType dtype, uint64_t seed, bool non_contiguous);

// ---- helpers for writing references in plain float64 loops ----
// A float64 tensor from values and a shape.
Tensor ref_tensor(const Shape& shape, const std::vector<double>& values);
// The same class targets with every third one (from the second) replaced by ignore_index: the losses'
// tests of ignored rows.
Tensor with_ignored(const Tensor& targets, int64_t ignore_index);
// out[i] = f(x[i]) / f(a[i], b[i]) over row-major values.
Tensor ref_map1(const Tensor& x, const std::function<double(double)>& f);
Tensor ref_map2(const Tensor& a, const Tensor& b, const std::function<double(double, double)>& f);
// Multi-index -> row-major index (the inverse of unravel_index, tensor/shape.h).
int64_t ravel(const std::vector<int64_t>& index, const Shape& shape);

}  // namespace hydra::test
