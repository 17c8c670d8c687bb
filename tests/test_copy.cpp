// Strided copies (tensor/copy.h): copy_into, clone and contiguous against a naive element loop.
//
// The reference walks dst and src with for_each_offset (tensor/strided.h, one element at a time in
// row-major order) and assigns static_cast<D>(src) into a snapshot of dst's whole storage; the test
// then compares every byte of dst's storage, so elements outside a dst view must be left untouched too.
// Layouts: every permutation of 3-D and 4-D shapes with odd sizes (as src and as dst), transposes
// whose sizes are not multiples of the tile, narrowed and selected views, stride-0 expanded sources,
// 0-size dims, 0-d tensors, all dtype pairs, layouts large enough to run in parallel, and a 2000x3000
// transpose. Also the layout simplification and the cursor copy_into is built from.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "support/threads.h"
#include "tensor/copy.h"
#include "tensor/dispatch.h"
#include "tensor/parallel.h"
#include "tensor/strided.h"

using namespace hydra;
using hydra::test::ScopedThreads;

namespace {

// A dense tensor whose elements all differ: element i is i * 0.37 - 150, converted to dtype (so
// integer dtypes hold truncated values, and float32 ones rounded values; both are what they are).
Tensor numbered(const Shape& shape, DType dtype = DType::Float32) {
  return dispatch_all(dtype, "numbered", [&](auto tag) {
    using T = decltype(tag);
    std::vector<T> values(static_cast<size_t>(shape_numel(shape)));
    for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<T>(static_cast<double>(i) * 0.37 - 150);
    return from_vector(values, shape);
  });
}

std::vector<int64_t> offsets_of(const Tensor& t) {
  std::vector<int64_t> offsets;
  for_each_offset(t.shape(), t.strides(), t.offset(), [&](int64_t off) { offsets.push_back(off); });
  return offsets;
}

// dst's storage as it must be after copy_into(dst, src): its current bytes with each element of the
// dst view replaced by the src element at the same index, converted with static_cast.
std::vector<char> expected_storage(const Tensor& dst, const Tensor& src) {
  const Storage& storage = *dst.impl()->storage;
  std::vector<char> out(static_cast<const char*>(storage.data), static_cast<const char*>(storage.data) + storage.nbytes);
  const std::vector<int64_t> dst_offsets = offsets_of(dst), src_offsets = offsets_of(src);
  dispatch_all(dst.dtype(), "expected", [&](auto dtag) {
    using D = decltype(dtag);
    dispatch_all(src.dtype(), "expected", [&](auto stag) {
      using S = decltype(stag);
      const S* s = static_cast<const S*>(src.impl()->storage->data);
      for (size_t i = 0; i < dst_offsets.size(); ++i) {
        const D value = static_cast<D>(s[src_offsets[i]]);
        std::memcpy(out.data() + dst_offsets[i] * static_cast<int64_t>(sizeof(D)), &value, sizeof(D));
      }
    });
  });
  return out;
}

std::string describe(const Tensor& t) {
  return shape_str(t.shape()) + " strides " + shape_str(t.strides()) + " offset " + std::to_string(t.offset()) +
         " " + dtype_name(t.dtype());
}

// copy_into(dst, src), then every byte of dst's storage against the naive loop. Names the first
// differing element (as a storage index of dst's dtype) on failure.
void check_copy_into(const Tensor& dst, const Tensor& src) {
  INFO("dst ", describe(dst), " <- src ", describe(src));
  const std::vector<char> want = expected_storage(dst, src);
  kernels::copy_into(dst, src);
  const char* got = static_cast<const char*>(dst.impl()->storage->data);
  const size_t elem = dtype_size(dst.dtype());
  for (size_t i = 0; i < want.size(); i += elem) {
    if (std::memcmp(got + i, want.data() + i, elem) != 0) {
      FAIL("first difference at storage element ", i / elem);
      return;
    }
  }
}

// clone and contiguous (kernels and autograd) of x: dense, row-major, the same values as x's naive walk.
void check_clone(const Tensor& x) {
  INFO("x ", describe(x));
  const std::vector<double> want = x.to_vector<double>();  // to_vector walks with for_each_offset
  for (const Tensor& y : {kernels::clone_raw(x), kernels::contiguous_raw(x), hydra::clone(x), hydra::contiguous(x)}) {
    CHECK(y.shape() == x.shape());
    CHECK(y.dtype() == x.dtype());
    CHECK(y.is_contiguous());
    CHECK(y.to_vector<double>() == want);
  }
  CHECK(!kernels::clone_raw(x).shares_storage_with(x));
  CHECK(kernels::contiguous_raw(x).shares_storage_with(x) == x.is_contiguous());
}

// src into a fresh dense dst, and clone/contiguous of src.
void check_dense_copy(const Tensor& src, DType dst_dtype = DType::Float32) {
  check_copy_into(full(src.shape(), -7.0, dst_dtype), src);
  check_clone(src);
}

// A dst of the given shape whose storage is laid out in the order `perm` (dst = permute(buffer, perm)),
// every element -7.
Tensor permuted_dst(const Shape& shape, const std::vector<int64_t>& perm, DType dtype = DType::Float32) {
  Shape buffer_shape(shape.size());
  for (size_t i = 0; i < perm.size(); ++i) buffer_shape[static_cast<size_t>(perm[i])] = shape[i];
  return permute(full(buffer_shape, -7.0, dtype), perm);
}

// A dst of the given shape inside a bigger buffer of -7s: index 1 of a new leading dim of 3, and
// elements 1..size of each dim of size + 2 (a selected, then narrowed view).
Tensor dst_inside_bigger(const Shape& shape, DType dtype = DType::Float32) {
  Shape buffer_shape = {3};
  for (int64_t s : shape) buffer_shape.push_back(s + 2);
  Tensor dst = select(full(buffer_shape, -7.0, dtype), 0, 1);
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) dst = narrow(dst, d, 1, shape[d]);
  return dst;
}

std::vector<std::vector<int64_t>> permutations(int64_t n) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  std::vector<std::vector<int64_t>> all;
  do all.push_back(p);
  while (std::next_permutation(p.begin(), p.end()));
  return all;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// The building blocks
// ---------------------------------------------------------------------------------------------------

TEST_CASE("simplify_layouts drops size-1 dims, orders by dst stride and merges dims dense in both") {
  // Dense in both: one dim.
  PairLayout dense = simplify_layouts({2, 3, 4}, {12, 4, 1}, {12, 4, 1});
  CHECK(dense.shape == Shape{24});
  CHECK(dense.dst == Strides{1});
  CHECK(dense.src == Strides{1});
  // Size-1 dims (any stride) disappear; a single element has no dims left.
  PairLayout ones_dims = simplify_layouts({1, 5, 1}, {99, 1, 7}, {3, 2, 0});
  CHECK(ones_dims.shape == Shape{5});
  CHECK(ones_dims.src == Strides{2});
  CHECK(simplify_layouts({1, 1}, {1, 1}, {5, 0}).shape.empty());
  // Columns 2..6 of a 4x10 src: rows of the narrowed width.
  PairLayout narrowed = simplify_layouts({4, 5}, {5, 1}, {10, 1});
  CHECK(narrowed.shape == Shape{4, 5});
  CHECK(narrowed.src == Strides{10, 1});
  // (B, T, H, D) -> (B, H, T, D): T and H do not merge, B does not either (H, T are swapped).
  PairLayout bhtd = simplify_layouts({2, 4, 3, 8}, {96, 24, 8, 1}, {96, 8, 32, 1});
  CHECK(bhtd.shape == Shape{2, 4, 3, 8});
  // A transposed dst is walked in its own storage order: dims sorted by dst stride.
  PairLayout to_transposed = simplify_layouts({3, 5}, {1, 3}, {5, 1});
  CHECK(to_transposed.shape == Shape{5, 3});
  CHECK(to_transposed.dst == Strides{3, 1});
  CHECK(to_transposed.src == Strides{1, 5});
  // An expanded src merges wherever all its strides are 0, and with dense dims below them.
  PairLayout scalar = simplify_layouts({3, 4}, {4, 1}, {0, 0});
  CHECK(scalar.shape == Shape{12});
  CHECK(scalar.src == Strides{0});
  PairLayout rows = simplify_layouts({3, 4, 5}, {20, 5, 1}, {0, 5, 1});
  CHECK(rows.shape == Shape{3, 20});
  CHECK(rows.src == Strides{0, 1});
  PairLayout cols = simplify_layouts({4, 5}, {5, 1}, {1, 0});
  CHECK(cols.shape == Shape{4, 5});
}

TEST_CASE("PairCursor started at any position matches stepping there from the start") {
  const Shape shape = {3, 1, 4, 5};
  const Strides a = {20, 20, 5, 1}, b = {1, 7, 3, 12};
  PairCursor walk(shape, a, b, 0);
  for (int64_t i = 0; i < shape_numel(shape); ++i, walk.next()) {
    PairCursor direct(shape, a, b, i);
    CHECK(direct.index == walk.index);
    CHECK(direct.a == walk.a);
    CHECK(direct.b == walk.b);
    CHECK(direct.a == i);  // a is dense row-major
  }
  CHECK(walk.a == 0);  // past the end it wraps to the start
  CHECK(walk.b == 0);
}

// ---------------------------------------------------------------------------------------------------
// Layouts
// ---------------------------------------------------------------------------------------------------

TEST_CASE("every permutation of a 3-D and a 4-D tensor, as source and as destination") {
  for (const Shape& base : {Shape{3, 5, 7}, Shape{2, 3, 4, 5}}) {
    const Tensor x = numbered(base);
    const int64_t nd = static_cast<int64_t>(base.size());
    for (const auto& p : permutations(nd)) {
      const Tensor src = permute(x, p);
      check_dense_copy(src);
      for (const auto& q : permutations(nd)) check_copy_into(permuted_dst(src.shape(), q), src);
    }
  }
}

TEST_CASE("transposes whose sizes are not multiples of the tile, both ways") {
  for (const Shape& shape : {Shape{67, 131}, Shape{131, 67}, Shape{1, 9}, Shape{9, 1}, Shape{1, 1}, Shape{64, 64},
                             Shape{65, 63}, Shape{63, 129}, Shape{2, 300}, Shape{300, 2}}) {
    const Tensor x = numbered(shape);
    const Tensor xt = transpose(x, 0, 1);
    check_dense_copy(xt);
    check_copy_into(transpose(full(shape, -7.0), 0, 1), numbered({shape[1], shape[0]}));  // into a transposed dst
    check_copy_into(transpose(full(shape, -7.0), 0, 1), xt);                               // transposed to transposed
  }
  // Transposes of the last two dims of (B, H, T, D), and the attention permutes.
  const Tensor bhtd = numbered({2, 3, 70, 9});
  check_dense_copy(transpose(bhtd, 2, 3));                 // shape: (B, H, D, T)
  check_dense_copy(permute(bhtd, {0, 2, 1, 3}));           // shape: (B, T, H, D)
  check_dense_copy(permute(bhtd, {0, 2, 3, 1}));           // shape: (B, T, D, H)
  check_dense_copy(transpose(permute(bhtd, {0, 2, 1, 3}), 1, 3));
}

TEST_CASE("narrowed and selected views, as source and as destination") {
  const Tensor x = numbered({6, 70, 9});
  const std::vector<Tensor> views = {
      narrow(x, 1, 3, 60),                   // rows of 9 with gaps between blocks
      narrow(x, 2, 1, 7),                    // short rows, stride 9
      narrow(narrow(x, 0, 1, 4), 2, 2, 5),   // two narrowed dims
      select(x, 0, 4),                       // a dense slab at an offset
      select(x, 2, 5),                       // a strided matrix
      select(select(x, 2, 8), 1, 69),        // a strided vector
      select(select(x, 2, 8), 0, 3),         // a strided vector along the other dim
      transpose(narrow(x, 1, 5, 64), 1, 2),  // narrowed, then transposed
      narrow(transpose(x, 0, 2), 0, 2, 6),   // transposed, then narrowed
      select(transpose(x, 1, 2), 2, 33),     // a column of a transpose
  };
  for (const Tensor& v : views) {
    check_dense_copy(v);
    check_copy_into(dst_inside_bigger(v.shape()), v);  // only that region of the buffer changes
  }
  check_copy_into(dst_inside_bigger({6, 70, 9}), x);
  check_copy_into(transpose(dst_inside_bigger({9, 70}), 0, 1), select(x, 0, 2));
}

TEST_CASE("stride-0 expanded sources") {
  const std::vector<Tensor> sources = {
      expand(numbered({5, 1}), {5, 7}),                          // each row one value
      expand(numbered({1, 7}), {5, 7}),                          // each column one value
      expand(numbered({}), {3, 4}),                              // one value everywhere
      expand(numbered({1, 1, 4}), {3, 5, 4}),
      expand(numbered({3, 1, 1}), {3, 70, 80}),
      expand(numbered({1}), {100000}),                           // long enough to split across threads
      expand(numbered({2, 1, 3, 1}), {2, 67, 3, 131}),
      expand(unsqueeze(transpose(numbered({67, 131}), 0, 1), 0), {3, 131, 67}),  // a broadcast transpose
      transpose(expand(numbered({70, 1}), {70, 80}), 0, 1),
      transpose(expand(numbered({1, 70}), {80, 70}), 0, 1),
  };
  for (const Tensor& src : sources) {
    check_dense_copy(src);
    check_copy_into(dst_inside_bigger(src.shape()), src);
  }
}

TEST_CASE("0-size dims and 0-d tensors") {
  for (const Shape& shape : {Shape{0}, Shape{3, 0, 4}, Shape{0, 5}, Shape{2, 0}}) {
    const Tensor x = numbered(shape);
    check_dense_copy(x);
    if (shape.size() >= 2) check_dense_copy(transpose(x, 0, -1));
    check_copy_into(dst_inside_bigger(shape), x);
    CHECK(kernels::clone_raw(x).numel() == 0);
  }
  check_dense_copy(narrow(numbered({4, 5}), 1, 2, 0));
  // 0-d: a scalar, a scalar selected out of a matrix, into a scalar selected out of a buffer.
  const Tensor scalar = numbered({});
  check_dense_copy(scalar);
  const Tensor picked = select(select(numbered({4, 5}), 0, 3), 0, 2);
  CHECK(picked.dim() == 0);
  check_dense_copy(picked);
  check_copy_into(dst_inside_bigger({}), picked);
  CHECK(kernels::clone_raw(picked).item<float>() == numbered({4, 5}).to_vector<float>()[17]);
}

TEST_CASE("dtype conversion between every pair of dtypes, on every kind of layout") {
  const std::vector<DType> dtypes = {DType::Float32, DType::Float64, DType::Int64, DType::Int32};
  for (DType from : dtypes) {
    const Tensor x = numbered({67, 131}, from);
    const Tensor cube = numbered({3, 5, 7}, from);
    const std::vector<Tensor> sources = {x, transpose(x, 0, 1), permute(cube, {2, 0, 1}), narrow(x, 1, 3, 100),
                                         select(cube, 1, 2), expand(numbered({5, 1}, from), {5, 7}),
                                         numbered({}, from)};
    for (DType to : dtypes) {
      for (const Tensor& src : sources) {
        check_copy_into(full(src.shape(), -7.0, to), src);
        check_copy_into(dst_inside_bigger(src.shape(), to), src);
        const Tensor cast = kernels::cast_raw(src, to);
        CHECK(cast.dtype() == to);
        CHECK(cast.is_contiguous());
      }
    }
  }
  // A value that converts inexactly: float64 -> float32 rounds, float -> int truncates toward 0.
  const Tensor d = from_vector<double>({0.1, -2.75, 2.75, 1e10}, {2, 2});
  CHECK(kernels::cast_raw(transpose(d, 0, 1), DType::Float32).to_vector<float>() ==
        std::vector<float>{0.1f, 2.75f, -2.75f, 1e10f});
  CHECK(kernels::cast_raw(narrow(d, 1, 1, 1), DType::Int64).to_vector<int64_t>() == std::vector<int64_t>{-2, 10000000000});
}

TEST_CASE("layouts large enough to split across threads give the same bytes with 1 and 2 threads") {
  const Tensor x = numbered({4, 130, 3, 70});
  const std::vector<Tensor> sources = {
      permute(x, {0, 2, 1, 3}),        // shape: (B, H, T, D): rows of D, many of them
      transpose(x, 1, 3),              // tiles over (T, D) with outer dims
      transpose(select(x, 2, 1), 1, 2),
      narrow(x, 3, 5, 60),
  };
  for (int threads : {1, 2}) {
    ScopedThreads scoped(threads);
    for (const Tensor& src : sources) {
      check_dense_copy(src);
      check_copy_into(dst_inside_bigger(src.shape()), src);
      std::vector<int64_t> reversed(static_cast<size_t>(src.dim()));
      std::iota(reversed.rbegin(), reversed.rend(), 0);
      check_copy_into(permuted_dst(src.shape(), reversed), src);
    }
  }
}

TEST_CASE("a 2000x3000 transpose, checked element by element") {
  const Tensor x = numbered({2000, 3000});
  const Tensor xt = transpose(x, 0, 1);  // shape: (3000, 2000)
  const Tensor y = hydra::contiguous(xt);
  CHECK(y.is_contiguous());
  const std::vector<float> xv = x.to_vector<float>(), yv = y.to_vector<float>();
  int64_t wrong = 0, first_wrong = -1;
  for (int64_t i = 0; i < 3000; ++i)
    for (int64_t j = 0; j < 2000; ++j)
      if (yv[i * 2000 + j] != xv[j * 3000 + i] && wrong++ == 0) first_wrong = i * 2000 + j;
  INFO("first wrong element ", first_wrong);
  CHECK(wrong == 0);
  check_copy_into(full({3000, 2000}, -7.0, DType::Float64), xt);  // and through the naive loop, converting
}

TEST_CASE("copy_into checks shapes and names both") {
  try {
    kernels::copy_into(zeros({2, 3}), zeros({3, 2}));
    FAIL("expected an error");
  } catch (const Error& e) {
    const std::string message = e.what();
    CHECK(message.find("copy") != std::string::npos);
    CHECK(message.find("[2, 3]") != std::string::npos);
    CHECK(message.find("[3, 2]") != std::string::npos);
  }
}
