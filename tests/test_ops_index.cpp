// index_select and gather: forward vs float64 loops, gradcheck (repeated indices included),
// non-contiguous inputs and indices, int32 and int64 indices, errors, and bit-identical backward
// results for any thread count.
#include <doctest/doctest.h>

#include <cstring>

#include "support/op_harness.h"
#include "support/threads.h"
#include "tensor/parallel.h"

using namespace hydra;
using namespace hydra::test;

namespace {

// out[p] = x[p with p[d] = index[p[d]]], in plain loops.
Tensor ref_index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  const int64_t d = dim < 0 ? dim + x.dim() : dim;
  std::vector<double> xv = x.to_vector<double>();
  std::vector<int64_t> iv = index.to_vector<int64_t>();
  Shape out_shape = x.shape();
  out_shape[d] = static_cast<int64_t>(iv.size());
  std::vector<double> out(shape_numel(out_shape));
  for (size_t e = 0; e < out.size(); ++e) {
    std::vector<int64_t> p = unravel_index(static_cast<int64_t>(e), out_shape);
    p[d] = iv[p[d]];
    out[e] = xv[ravel(p, x.shape())];
  }
  return ref_tensor(out_shape, out);
}

// out[p] = x[p with p[d] = index[p]], in plain loops.
Tensor ref_gather(const Tensor& x, int64_t dim, const Tensor& index) {
  const int64_t d = dim < 0 ? dim + x.dim() : dim;
  std::vector<double> xv = x.to_vector<double>();
  std::vector<int64_t> iv = index.to_vector<int64_t>();
  std::vector<double> out(iv.size());
  for (size_t e = 0; e < out.size(); ++e) {
    std::vector<int64_t> p = unravel_index(static_cast<int64_t>(e), index.shape());
    p[d] = iv[e];
    out[e] = xv[ravel(p, x.shape())];
  }
  return ref_tensor(index.shape(), out);
}

const char* index_dtype_name(DType dt) { return dt == DType::Int32 ? "int32" : "int64"; }

}  // namespace

TEST_CASE("index_select: every dim (also negative), short and repeating indices, int32 and int64") {
  const std::vector<Shape> shapes = {{7}, {1, 5}, {4, 1}, {3, 5}, {2, 3, 4}, {5, 1, 3}};
  int cases = 0;
  for (const Shape& s : shapes) {
    const int64_t nd = static_cast<int64_t>(s.size());
    for (int64_t dim = -nd; dim < nd; ++dim) {
      const int64_t size = s[dim < 0 ? dim + nd : dim];
      // One index, and more indices than entries: the second must repeat some (pigeonhole).
      for (int64_t n : {int64_t{1}, 2 * size + 1}) {
        for (DType dt : {DType::Int32, DType::Int64}) {
          OpCase c{"index_select " + shape_str(s) + " dim " + std::to_string(dim) + " n " + std::to_string(n) +
                       " " + index_dtype_name(dt),
                   {{s}, {{n}, Fill::Index, size, dt, false}},
                   [dim](const Inputs& x) { return index_select(x[0], dim, x[1]); },
                   [dim](const Inputs& x) { return ref_index_select(x[0], dim, x[1]); }};
          check_op_case(c);
          ++cases;
        }
      }
    }
  }
  CHECK(cases == 104);
}

TEST_CASE("index_select: repeated indices sum their gradients") {
  Tensor x = Generator(5).normal({4, 3}, 0, 1, DType::Float64).set_requires_grad();
  Tensor idx = from_vector<int32_t>({2, 0, 2, 2}, {4});
  Tensor out = index_select(x, 0, idx);
  CHECK(out.shape() == Shape{4, 3});
  // Row i of the upstream gradient is (i + 1) everywhere: row 2 gets 1 + 3 + 4, row 0 gets 2.
  std::vector<double> up;
  for (int i = 0; i < 4; ++i)
    for (int c = 0; c < 3; ++c) up.push_back(i + 1);
  out.backward(from_vector(up, {4, 3}));
  std::vector<double> want = {2, 2, 2, 0, 0, 0, 8, 8, 8, 0, 0, 0};
  CHECK(x.grad().to_vector<double>() == want);
}

TEST_CASE("index_select: integer tables and empty indices") {
  Tensor table = from_vector<int64_t>({10, 11, 20, 21, 30, 31}, {3, 2});
  Tensor got = index_select(table, 0, from_vector<int64_t>({2, 2, 0}, {3}));
  CHECK(got.dtype() == DType::Int64);
  CHECK(got.to_vector<int64_t>() == std::vector<int64_t>{30, 31, 30, 31, 10, 11});

  Tensor x = ones({3, 2}).set_requires_grad();
  Tensor none = index_select(x, 0, zeros({0}, DType::Int64));
  CHECK(none.shape() == Shape{0, 2});
  none.backward(zeros({0, 2}));
  CHECK(x.grad().to_vector<float>() == std::vector<float>(6, 0.0f));
}

TEST_CASE("gather: PyTorch semantics on every dim, smaller index off dim, int32 and int64") {
  struct Shapes {
    Shape x, index;
    int64_t dim;
  };
  const std::vector<Shapes> table = {
      {{5}, {8}, 0},          {{5}, {3}, -1},         {{3, 4}, {2, 4}, 0},       {{3, 4}, {3, 6}, 1},
      {{3, 4}, {1, 1}, 0},    {{3, 4}, {2, 3}, -1},   {{3, 4}, {5, 2}, -2},      {{1, 5}, {1, 3}, 1},
      {{2, 3, 4}, {2, 2, 4}, 1}, {{2, 3, 4}, {3, 3, 2}, 0}, {{2, 3, 4}, {2, 3, 1}, -1}, {{2, 3, 4}, {1, 2, 5}, 2},
      {{4, 1, 3}, {6, 1, 2}, 0},
  };
  for (const Shapes& t : table)
    for (DType dt : {DType::Int32, DType::Int64}) {
      const int64_t d = t.dim < 0 ? t.dim + static_cast<int64_t>(t.x.size()) : t.dim;
      OpCase c{"gather x " + shape_str(t.x) + " index " + shape_str(t.index) + " dim " + std::to_string(t.dim) +
                   " " + index_dtype_name(dt),
               {{t.x}, {t.index, Fill::Index, t.x[d], dt, false}},
               [dim = t.dim](const Inputs& x) { return gather(x[0], dim, x[1]); },
               [dim = t.dim](const Inputs& x) { return ref_gather(x[0], dim, x[1]); }};
      check_op_case(c);
    }
}

TEST_CASE("gather: picking one class per row (the cross-entropy pattern)") {
  Tensor logits = from_vector<double>({0, 1, 2, 10, 11, 12}, {2, 3}).set_requires_grad();
  Tensor target = from_vector<int64_t>({2, 0}, {2, 1});
  Tensor picked = gather(logits, -1, target);
  CHECK(picked.to_vector<double>() == std::vector<double>{2, 10});
  picked.backward(from_vector<double>({1, 5}, {2, 1}));
  CHECK(logits.grad().to_vector<double>() == std::vector<double>{0, 0, 1, 5, 0, 0});
}

TEST_CASE("index errors name the op, the bad index, its position and the dim size") {
  Tensor x = zeros({3, 4});
  std::vector<ErrorCase> cases = {
      {"too large", [&] { index_select(x, 0, from_vector<int64_t>({0, 5, 1}, {3})); },
       {"index_select", "index 5", "position 1", "dim 0 of size 3", "[3, 4]"}},
      {"negative int32", [&] { index_select(x, 1, from_vector<int32_t>({-1}, {1})); },
       {"index_select", "index -1", "position 0", "dim 1 of size 4"}},
      {"negative dim", [&] { index_select(x, -1, from_vector<int64_t>({1, 2, 4}, {3})); },
       {"index_select", "index 4", "position 2", "dim 1 of size 4"}},
      {"2-D index", [&] { index_select(x, 0, zeros({2, 1}, DType::Int64)); }, {"index_select", "1-D", "[2, 1]"}},
      {"float index", [&] { index_select(x, 0, zeros({2})); }, {"index_select", "float32"}},
      {"bad dim", [&] { index_select(x, 2, zeros({1}, DType::Int64)); }, {"index_select", "dim 2"}},
      {"gather rank", [&] { gather(x, 0, zeros({3}, DType::Int64)); }, {"gather", "[3]", "[3, 4]"}},
      {"gather size", [&] { gather(x, 0, zeros({2, 5}, DType::Int64)); }, {"gather", "[2, 5]", "[3, 4]", "dim 1"}},
      {"gather range", [&] { gather(x, 1, from_vector<int64_t>({0, 1, 2, 9}, {2, 2})); },
       {"gather", "index 9", "position [1, 1]", "dim 1 of size 4"}},
      {"gather negative", [&] { gather(x, 0, from_vector<int32_t>({0, -2}, {1, 2})); },
       {"gather", "index -2", "position [0, 1]", "dim 0 of size 3"}},
      {"gather float index", [&] { gather(x, 0, zeros({3, 4})); }, {"gather", "float32"}},
      {"gather bad dim", [&] { gather(x, -3, zeros({3, 4}, DType::Int64)); }, {"gather", "dim -3"}},
  };
  for (const ErrorCase& c : cases) check_error_case(c);
}

namespace {

// Forward values and dx for the upstream gradient, run with the given thread count (restored after).
struct Run {
  std::vector<float> out, dx;
};

Run run_with_threads(int threads, const std::function<Tensor(const Tensor&)>& f, const Tensor& x0,
                     const Tensor& upstream) {
  ScopedThreads scoped(threads);
  Tensor x = x0.detach().set_requires_grad();
  Tensor out = f(x);
  out.backward(upstream);
  return Run{out.to_vector<float>(), x.grad().to_vector<float>()};
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// index_select(x, dim, index) and the gradient for `upstream`, in plain loops: forward by copying, dx by
// adding the upstream rows in index order (the order the kernel promises, so the sums match bit for bit).
Run ref_index_select_run(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& upstream) {
  const Shape& xs = x.shape();
  Shape os = xs;
  os[dim] = index.numel();
  std::vector<float> xv = x.to_vector<float>(), up = upstream.to_vector<float>();
  std::vector<int64_t> iv = index.to_vector<int64_t>();
  Run r{std::vector<float>(up.size()), std::vector<float>(xv.size(), 0.0f)};
  for (size_t e = 0; e < up.size(); ++e) {
    std::vector<int64_t> p = unravel_index(static_cast<int64_t>(e), os);
    p[dim] = iv[p[dim]];
    r.out[e] = xv[ravel(p, xs)];
  }
  // Row-major order over upstream visits, for each fixed position, the indices in increasing order.
  for (size_t e = 0; e < up.size(); ++e) {
    std::vector<int64_t> p = unravel_index(static_cast<int64_t>(e), os);
    p[dim] = iv[p[dim]];
    r.dx[ravel(p, xs)] += up[e];
  }
  return r;
}

// The same for gather.
Run ref_gather_run(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& upstream) {
  std::vector<float> xv = x.to_vector<float>(), up = upstream.to_vector<float>();
  std::vector<int64_t> iv = index.to_vector<int64_t>();
  Run r{std::vector<float>(up.size()), std::vector<float>(xv.size(), 0.0f)};
  for (size_t e = 0; e < up.size(); ++e) {
    std::vector<int64_t> p = unravel_index(static_cast<int64_t>(e), index.shape());
    p[dim] = iv[e];
    r.out[e] = xv[ravel(p, x.shape())];
    r.dx[ravel(p, x.shape())] += up[e];
  }
  return r;
}

}  // namespace

TEST_CASE("index_select backward (the embedding gradient) is bit-identical for 1 and 2 threads") {
  const int64_t V = 4096, C = 256, N = 20000;
  Generator gen(42);
  Tensor table = gen.normal({V, C});
  Tensor tokens = gen.randint({N}, 0, V);
  Tensor upstream = gen.normal({N, C});
  auto embed = [&](const Tensor& x) { return index_select(x, 0, tokens); };
  Run one = run_with_threads(1, embed, table, upstream);
  Run two = run_with_threads(2, embed, table, upstream);
  CHECK(std::memcmp(one.dx.data(), two.dx.data(), one.dx.size() * sizeof(float)) == 0);
  // Both equal the plain loop that adds the rows in index order, bit for bit, and so do the forwards.
  Run want = ref_index_select_run(table, 0, tokens, upstream);
  CHECK(same_bits(one.dx, want.dx));
  CHECK(same_bits(one.out, want.out));
  CHECK(same_bits(two.out, want.out));
}

TEST_CASE("index_select and gather on large inputs: any thread count, any dim, bit for bit") {
  // Large enough to split into tasks; slabs before dim (outer > 1) combine with blocks of rows or
  // columns when the thread count exceeds the slabs (3 and 4 threads here).
  Generator gen(7);
  SUBCASE("index_select dim 1, repeated indices") {
    Tensor x = gen.normal({2, 500, 64});
    Tensor index = gen.randint({3000}, 0, 500, DType::Int32);
    Tensor upstream = gen.normal({2, 3000, 64});
    Run want = ref_index_select_run(x, 1, index, upstream);
    for (int threads : {1, 2, 3, 4}) {
      INFO("threads ", threads);
      Run got = run_with_threads(threads, [&](const Tensor& t) { return index_select(t, -2, index); }, x, upstream);
      CHECK(same_bits(got.out, want.out));
      CHECK(same_bits(got.dx, want.dx));
    }
  }
  SUBCASE("gather dim 0 (collisions along the gathered dim)") {
    Tensor x = gen.normal({64, 300});
    Tensor index = gen.randint({5000, 300}, 0, 64, DType::Int32);
    Tensor upstream = gen.normal({5000, 300});
    Run want = ref_gather_run(x, 0, index, upstream);
    for (int threads : {1, 2, 3, 4}) {
      INFO("threads ", threads);
      Run got = run_with_threads(threads, [&](const Tensor& t) { return gather(t, 0, index); }, x, upstream);
      CHECK(same_bits(got.out, want.out));
      CHECK(same_bits(got.dx, want.dx));
    }
  }
  SUBCASE("gather dim 1 of a 3-D tensor with a smaller index") {
    Tensor x = gen.normal({2, 40, 300});
    Tensor index = gen.randint({2, 900, 290}, 0, 40);
    Tensor upstream = gen.normal({2, 900, 290});
    Run want = ref_gather_run(x, 1, index, upstream);
    for (int threads : {1, 2, 3, 4}) {
      INFO("threads ", threads);
      Run got = run_with_threads(threads, [&](const Tensor& t) { return gather(t, 1, index); }, x, upstream);
      CHECK(same_bits(got.out, want.out));
      CHECK(same_bits(got.dx, want.dx));
    }
  }
}
