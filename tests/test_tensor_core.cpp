// Tensor basics and the autograd engine itself (the ops have their own tests/test_ops_*.cpp):
//   creation (zeros/ones/full/arange/from_vector/from_blob, shapes with a 0 dim), layouts of views,
//   item/to_vector on strided views, printing, the seeded Generator (reproducible, statistically sane,
//   independent of the thread count), and the engine: accumulation, zero_grad, detach, NoGradGuard,
//   errors, deep graphs, and skipping branches that need no gradient.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "autograd/record.h"
#include "support/threads.h"
#include "tensor/parallel.h"

using namespace hydra;
using hydra::test::expect_thread_invariant;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Mean and (population) standard deviation, accumulated in double.
std::pair<double, double> mean_std(const std::vector<double>& v) {
  double sum = 0, sum_sq = 0;
  for (double x : v) sum += x;
  const double mean = sum / static_cast<double>(v.size());
  for (double x : v) sum_sq += (x - mean) * (x - mean);
  return {mean, std::sqrt(sum_sq / static_cast<double>(v.size()))};
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Creation
// ---------------------------------------------------------------------------------------------------

TEST_CASE("zeros, ones and full fill every element with the value, in the dtype asked for") {
  Tensor z = zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.strides() == Strides{3, 1});
  CHECK(z.dtype() == DType::Float32);
  CHECK(z.to_vector<float>() == std::vector<float>(6, 0.0f));
  CHECK(ones({4}, DType::Int32).to_vector<int32_t>() == std::vector<int32_t>(4, 1));
  Tensor f = full({3, 1, 2}, -2.5, DType::Float64);
  CHECK(f.dtype() == DType::Float64);
  CHECK(f.to_vector<double>() == std::vector<double>(6, -2.5));
  // A 0-d tensor holds one element.
  Tensor s = full({}, 7.0, DType::Int64);
  CHECK(s.dim() == 0);
  CHECK(s.numel() == 1);
  CHECK(s.item<int64_t>() == 7);
}

TEST_CASE("arange counts up, counts down with a negative step, and can be empty") {
  CHECK(arange(5).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(arange(5).dtype() == DType::Int64);
  CHECK(arange(2, 11, 3).to_vector<int64_t>() == std::vector<int64_t>{2, 5, 8});
  CHECK(arange(10, 0, -3).to_vector<int64_t>() == std::vector<int64_t>{10, 7, 4, 1});
  CHECK(arange(3, -3, -2, DType::Float32).to_vector<float>() == std::vector<float>{3, 1, -1});
  CHECK(arange(0).numel() == 0);
  CHECK(arange(5, 5, 1).numel() == 0);
  CHECK(arange(5, 10, -1).numel() == 0);  // a negative step away from `end` gives nothing
  CHECK_THROWS_AS(arange(0, 10, 0), Error);
}

TEST_CASE("from_vector copies; a wrong element count is an error naming the shape") {
  std::vector<float> values = {1, 2, 3, 4, 5, 6};
  Tensor t = from_vector(values, {2, 3});
  values[0] = 100;  // the tensor holds its own copy
  CHECK(t.to_vector<float>() == std::vector<float>{1, 2, 3, 4, 5, 6});
  CHECK(from_vector(std::vector<int32_t>{4, 5}, {2}).dtype() == DType::Int32);
  try {
    from_vector(std::vector<float>{1, 2, 3}, {2, 2});
    FAIL("from_vector should have thrown");
  } catch (const Error& e) {
    CHECK(contains(e.what(), "[2, 2]"));
  }
}

TEST_CASE("from_blob wraps memory without copying, and keep_alive keeps it alive") {
  std::vector<double> buffer = {1, 2, 3, 4, 5, 6};
  Tensor t = from_blob(buffer.data(), {3, 2}, DType::Float64);
  CHECK(t.raw_data() == static_cast<void*>(buffer.data()));
  buffer[5] = 60;  // writes through either side are seen by the other
  CHECK(t.to_vector<double>().back() == 60);
  t.data<double>()[0] = 10;
  CHECK(buffer[0] == 10);

  // The storage holds `keep_alive`: the memory outlives the last handle the caller had.
  auto owned = std::make_shared<std::vector<float>>(std::vector<float>{7, 8, 9});
  Tensor u = from_blob(owned->data(), {3}, DType::Float32, owned);
  std::weak_ptr<std::vector<float>> watch = owned;
  owned.reset();
  CHECK_FALSE(watch.expired());
  CHECK(u.to_vector<float>() == std::vector<float>{7, 8, 9});
  u = Tensor();
  CHECK(watch.expired());
}

TEST_CASE("shapes with a 0 dim have no elements but a well-formed layout") {
  Tensor t = zeros({2, 0, 3});
  CHECK(t.numel() == 0);
  CHECK(t.shape() == Shape{2, 0, 3});
  CHECK(t.strides().size() == 3);
  CHECK(t.to_vector<float>().empty());
  CHECK(t.is_contiguous());
  CHECK(contains(to_string(t), "shape=[2, 0, 3]"));
  Tensor r = add_scalar(t, 1.0);  // ops accept them and return the same empty shape
  CHECK(r.shape() == Shape{2, 0, 3});
  CHECK(from_vector(std::vector<int64_t>{}, {0}).numel() == 0);
  CHECK_THROWS_AS(zeros({2, -1}), Error);
}

// ---------------------------------------------------------------------------------------------------
// Layouts and element access
// ---------------------------------------------------------------------------------------------------

TEST_CASE("is_contiguous tells dense row-major views from strided ones") {
  Tensor x = reshape(arange(24, DType::Float32), {2, 3, 4});
  CHECK(x.is_contiguous());
  CHECK_FALSE(transpose(x, 1, 2).is_contiguous());
  CHECK_FALSE(permute(x, {2, 0, 1}).is_contiguous());
  CHECK(narrow(x, 0, 1, 1).is_contiguous());      // whole rows of the outer dim: still dense
  CHECK_FALSE(narrow(x, 2, 1, 2).is_contiguous());  // part of every inner row: gaps
  CHECK(select(x, 0, 1).is_contiguous());
  CHECK_FALSE(select(x, 2, 0).is_contiguous());
  CHECK_FALSE(expand(reshape(arange(3, DType::Float32), {3, 1}), {3, 4}).is_contiguous());
  CHECK(unsqueeze(x, 1).is_contiguous());  // size-1 dims may have any stride

  // Views share storage; contiguous() copies a strided view and returns a dense one as is.
  Tensor t = transpose(x, 0, 2);
  CHECK(t.shares_storage_with(x));
  Tensor c = contiguous(t);
  CHECK(c.is_contiguous());
  CHECK_FALSE(c.shares_storage_with(x));
  CHECK(c.to_vector<float>() == t.to_vector<float>());
  CHECK(contiguous(x).shares_storage_with(x));
}

TEST_CASE("item and to_vector read strided views in row-major order of the view") {
  Tensor x = reshape(arange(6, DType::Float32), {2, 3});  // [[0, 1, 2], [3, 4, 5]]
  Tensor t = transpose(x, 0, 1);                          // [[0, 3], [1, 4], [2, 5]]
  CHECK(t.to_vector<float>() == std::vector<float>{0, 3, 1, 4, 2, 5});
  CHECK(narrow(x, 1, 1, 2).to_vector<float>() == std::vector<float>{1, 2, 4, 5});
  CHECK(select(x, 1, 2).to_vector<int64_t>() == std::vector<int64_t>{2, 5});  // converted to int64
  CHECK(select(select(t, 0, 2), 0, 1).item<float>() == 5);  // t[2][1] = x[1][2]
  CHECK(expand(select(x, 0, 1), {2, 3}).to_vector<float>() == std::vector<float>{3, 4, 5, 3, 4, 5});
  CHECK(full({1, 1}, 4.5).item<double>() == 4.5);
  CHECK_THROWS_AS(x.item<float>(), Error);         // six elements, not one
  CHECK_THROWS_AS(x.data<double>(), Error);        // float32 data read as double
  CHECK_THROWS_AS(Tensor().shape(), Error);        // an undefined tensor
}

// ---------------------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------------------

TEST_CASE("printing shows shape and dtype, then the values, eliding the middle of long dims") {
  Tensor x = reshape(arange(6, DType::Float32), {2, 3});
  std::string s = to_string(x);
  CHECK(contains(s, "tensor(shape=[2, 3], dtype=float32)"));
  CHECK(contains(s, "[[0, 1, 2],\n [3, 4, 5]]"));
  CHECK_FALSE(contains(s, "..."));

  std::string longer = to_string(arange(100));
  CHECK(contains(longer, "dtype=int64"));
  CHECK(contains(longer, "[0, 1, 2, ..., 97, 98, 99]"));
  CHECK_FALSE(contains(longer, "50"));

  std::string tall = to_string(zeros({50, 2}));
  CHECK(contains(tall, "..."));
  CHECK(std::count(tall.begin(), tall.end(), '\n') < 12);  // 6 rows, the "...", the header

  std::string scalar = to_string(full({}, 2.5, DType::Float64));
  CHECK(scalar == "tensor(shape=[], dtype=float64)\n2.5");

  Tensor p = ones({2}).set_requires_grad();
  CHECK(contains(to_string(p), "requires_grad"));
  CHECK(to_string(Tensor()) == "tensor(undefined)");
  // operator<< prints the same text.
  std::ostringstream os;
  os << x;
  CHECK(os.str() == s);
}

// ---------------------------------------------------------------------------------------------------
// Generator
// ---------------------------------------------------------------------------------------------------

TEST_CASE("Generator: the same seed gives the same values, and each draw moves on") {
  Generator a(42), b(42), c(43);
  std::vector<float> first = a.normal({1000}).to_vector<float>();
  CHECK(first == b.normal({1000}).to_vector<float>());
  CHECK(first != c.normal({1000}).to_vector<float>());
  CHECK(a.offset() == 1000);
  // The next draw starts at a new offset, so its values differ from the first.
  CHECK(a.normal({1000}).to_vector<float>() != first);
  // Offsets are counters: two draws of 500 equal one draw of 1000.
  Generator d(42);
  std::vector<float> halves = d.normal({500}).to_vector<float>();
  std::vector<float> second = d.normal({500}).to_vector<float>();
  halves.insert(halves.end(), second.begin(), second.end());
  CHECK(halves == first);
  Generator e(42);
  e.set_state(42, 500);
  CHECK(e.normal({500}).to_vector<float>() == second);
}

TEST_CASE("Generator: set_state reproduces a draw") {
  Generator g(7);
  g.uniform({123});
  const uint64_t seed = g.seed(), offset = g.offset();
  std::vector<double> want = g.normal({4, 5}, 1.0, 2.0, DType::Float64).to_vector<double>();
  g.uniform({77});  // move on
  g.set_state(seed, offset);
  CHECK(g.normal({4, 5}, 1.0, 2.0, DType::Float64).to_vector<double>() == want);
  Generator fresh(0);
  fresh.set_state(seed, offset);
  CHECK(fresh.normal({4, 5}, 1.0, 2.0, DType::Float64).to_vector<double>() == want);
}

TEST_CASE("Generator: normal has the asked mean and std on 100k samples") {
  Generator g(2024);
  const double mean = 2.0, std = 3.0;
  auto [m, s] = mean_std(g.normal({100000}, mean, std, DType::Float64).to_vector<double>());
  // The sample mean has standard error std / sqrt(n) ~ 0.0095 and the sample std ~ std / sqrt(2n) ~
  // 0.0067; allow about 6 standard errors so the test is deterministic-safe and still meaningful.
  CHECK(std::abs(m - mean) < 0.06);
  CHECK(std::abs(s - std) < 0.04);
}

TEST_CASE("Generator: uniform, trunc_normal and randint stay in bounds") {
  Generator g(5);
  std::vector<double> t = g.trunc_normal({100000}, 0.0, 1.0, -2.0, 2.0, DType::Float64).to_vector<double>();
  double lo = 1e9, hi = -1e9;
  for (double v : t) lo = std::min(lo, v), hi = std::max(hi, v);
  CHECK(lo >= -2.0);
  CHECK(hi <= 2.0);
  CHECK(lo < -1.9);  // the tails up to the bounds are reached
  CHECK(hi > 1.9);
  // The standard normal truncated to [-2, 2] has std ~ 0.880.
  auto [m, s] = mean_std(t);
  CHECK(std::abs(m) < 0.02);
  CHECK(std::abs(s - 0.880) < 0.02);
  // Truncation with a narrow window around a shifted mean (as weight init uses: a = -3 std, b = 3 std).
  std::vector<float> w = g.trunc_normal({10000}, 0.5, 0.02, 0.44, 0.56).to_vector<float>();
  for (float v : w) REQUIRE((v >= 0.44f && v <= 0.56f));

  std::vector<float> u = g.uniform({100000}, -1.0, 1.0).to_vector<float>();
  for (float v : u) REQUIRE((v >= -1.0f && v < 1.0f));
  std::vector<int64_t> r = g.randint({10000}, 3, 7).to_vector<int64_t>();
  std::vector<int> counts(7, 0);
  for (int64_t v : r) {
    REQUIRE((v >= 3 && v < 7));
    ++counts[v];
  }
  for (int v = 3; v < 7; ++v) CHECK(counts[v] > 2000);  // each of 4 values ~2500 times

  CHECK_THROWS_AS(g.normal({3}, 0.0, -1.0), Error);
  CHECK_THROWS_AS(g.uniform({3}, 1.0, 1.0), Error);
  CHECK_THROWS_AS(g.trunc_normal({3}, 0.0, 1.0, 10.0, 11.0), Error);  // no mass there
}

TEST_CASE("Generator and kernels give bit-identical results with 1 and 2 threads") {
  // Large enough that every parallel loop below is split when 2 threads are allowed.
  auto compute = [] {
    Generator g(99);
    Tensor x = g.normal({300, 700});
    Tensor t = g.trunc_normal({300, 700}, 0.0, 1.0, -2.0, 2.0);
    Tensor y = silu(mul(exp(mul_scalar(x, 0.1)), t));
    Tensor rows = sum(y, {1});  // shape: (300,)
    return std::vector<Tensor>{x, y, rows, sum(y)};
  };
  expect_thread_invariant(compute, {"normal", "silu(exp * trunc_normal)", "row sums", "sum"});
}

TEST_CASE("expect_thread_invariant runs with 1 and 2 threads and restores the count, also when the run throws") {
  const int before = num_threads();
  std::vector<int> seen;
  expect_thread_invariant([&] {
    seen.push_back(num_threads());
    return std::vector<Tensor>{};
  });
  CHECK(seen == std::vector<int>{1, 2});
  CHECK(num_threads() == before);
  CHECK_THROWS_AS(expect_thread_invariant([]() -> std::vector<Tensor> { throw Error("boom"); }), Error);
  CHECK(num_threads() == before);
}

// ---------------------------------------------------------------------------------------------------
// Autograd engine
// ---------------------------------------------------------------------------------------------------

TEST_CASE("a leaf used twice receives the sum of both gradients") {
  Tensor x = from_vector(std::vector<double>{1, 2, 3}, {3}).set_requires_grad();
  // y = sum(x * x + x): dy/dx = 2x + 1, reached through three uses of x.
  Tensor y = sum(add(mul(x, x), x));
  y.backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{3, 5, 7});
  // A second, separate backward accumulates into the same .grad.
  sum(mul_scalar(x, 10.0)).backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{13, 15, 17});
  CHECK(x.grad().shape() == x.shape());
  CHECK_FALSE(x.grad().requires_grad());
}

TEST_CASE("zero_grad drops the gradient; the next backward starts from zero") {
  Tensor x = full({2}, 3.0).set_requires_grad();
  sum(mul(x, x)).backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{6, 6});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  sum(x).backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{1, 1});
}

TEST_CASE("detach shares storage but cuts the history") {
  Tensor x = full({2, 2}, 1.5).set_requires_grad();
  Tensor y = mul_scalar(x, 2.0);
  CHECK(y.requires_grad());
  CHECK_FALSE(y.is_leaf());
  Tensor d = y.detach();
  CHECK(d.shares_storage_with(y));
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  CHECK(d.to_vector<float>() == y.to_vector<float>());
  // Ops on a detached tensor are not recorded, and their backward cannot reach x.
  Tensor z = sum(mul(d, d));
  CHECK_FALSE(z.requires_grad());
  CHECK_THROWS_AS(z.backward(), Error);
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("NoGradGuard records nothing, nests, and restores the previous mode") {
  Tensor x = ones({3}).set_requires_grad();
  CHECK(grad_mode_enabled());
  {
    NoGradGuard outer;
    CHECK_FALSE(grad_mode_enabled());
    Tensor y = mul(x, x);
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
    {
      NoGradGuard inner;
      CHECK_FALSE(grad_mode_enabled());
    }
    CHECK_FALSE(grad_mode_enabled());  // the inner guard restored "off", not "on"
  }
  CHECK(grad_mode_enabled());
  CHECK(mul(x, x).requires_grad());
}

TEST_CASE("backward errors: a freed graph, a tensor that needs no grad, a wrong upstream shape") {
  Tensor x = full({1}, 2.0).set_requires_grad();
  Tensor y = mul(x, x);
  y.backward();
  CHECK(x.grad().item<float>() == 4);
  // The first backward freed the saved tensors; going through the graph again is a user error.
  CHECK_THROWS_AS(y.backward(), Error);

  Tensor plain = ones({1});
  CHECK_THROWS_AS(plain.backward(), Error);
  CHECK_THROWS_AS(mul(plain, plain).backward(), Error);

  Tensor v = mul_scalar(ones({2, 3}).set_requires_grad(), 2.0);
  CHECK_THROWS_AS(v.backward(), Error);               // not a scalar: needs an upstream gradient
  CHECK_THROWS_AS(v.backward(ones({3, 2})), Error);   // upstream of the wrong shape
  CHECK_THROWS_AS(v.backward(ones({2, 3}, DType::Float64)), Error);  // or dtype
  CHECK_THROWS_AS(ones({2}, DType::Int64).set_requires_grad(), Error);  // integers never need grad
  CHECK_THROWS_AS(v.set_requires_grad(false), Error);                   // nor can a non-leaf change
}

TEST_CASE("backward with an upstream gradient weights each output") {
  Tensor x = from_vector(std::vector<float>{1, 2, 3}, {3}).set_requires_grad();
  Tensor y = mul_scalar(x, 3.0);
  y.backward(from_vector(std::vector<float>{1, 0, -1}, {3}));
  CHECK(x.grad().to_vector<float>() == std::vector<float>{3, 0, -3});
}

TEST_CASE("a 20000-op-deep chain backpropagates (and is freed) without overflowing the stack") {
  // The engine walks the graph with an explicit work list; a recursive walk (or a recursive chain of
  // node destructors) would need 20000 nested frames here.
  const int depth = 20000;
  Tensor x = full({4}, 1.0).set_requires_grad();
  {
    Tensor y = x;
    for (int i = 0; i < depth; ++i) y = add_scalar(y, 1.0);
    CHECK(y.to_vector<float>() == std::vector<float>(4, 1.0f + depth));
    sum(y).backward();
  }  // y, the last handle on the chain, is released here
  CHECK(x.grad().to_vector<float>() == std::vector<float>(4, 1.0f));

  // A deep graph dropped without ever running backward is freed the same way.
  {
    Tensor y = x;
    for (int i = 0; i < depth; ++i) y = mul_scalar(y, 1.0);
  }
  CHECK(x.grad().to_vector<float>() == std::vector<float>(4, 1.0f));
}

TEST_CASE("backward never visits a branch that needs no gradient") {
  Tensor x = full({3}, 2.0).set_requires_grad();
  Tensor frozen = full({3}, 5.0).set_requires_grad();
  frozen.set_requires_grad(false);  // freezing a parameter

  // Ops on frozen inputs alone are not even recorded.
  Tensor branch = exp(mul(frozen, frozen));
  CHECK_FALSE(branch.requires_grad());
  CHECK(branch.grad_fn() == nullptr);

  // A probe op with one input that needs a gradient and one that does not: its rule must be told so
  // (needs = {true, false}), and may leave the second gradient undefined.
  int probe_runs = 0;
  std::vector<bool> probe_needs;
  Tensor mixed = record("probe", clone(x.detach()), {x, branch}, [&](const Tensor& dout, const Needs& needs) {
    ++probe_runs;
    probe_needs = needs;
    return Grads{dout, Tensor()};
  });
  sum(add(mixed, branch)).backward();
  CHECK(probe_runs == 1);
  CHECK(probe_needs == std::vector<bool>{true, false});
  CHECK(x.grad().to_vector<float>() == std::vector<float>{1, 1, 1});
  CHECK_FALSE(frozen.grad().defined());
  CHECK_FALSE(branch.grad().defined());
}
