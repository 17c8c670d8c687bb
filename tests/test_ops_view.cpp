// View ops: values vs a float64 reference, gradcheck, non-contiguous inputs, that views share storage
// (no copy), and errors.
#include <doctest/doctest.h>

#include "support/op_harness.h"

using namespace hydra;
using namespace hydra::test;

namespace {

// Reference for any view: out[idx] = x[map(idx)] where map sends an output multi-index to an input one.
Tensor ref_gather_view(const Tensor& x, const Shape& out_shape,
                       const std::function<std::vector<int64_t>(const std::vector<int64_t>&)>& map) {
  std::vector<double> xv = x.to_vector<double>(), out(shape_numel(out_shape));
  for (size_t i = 0; i < out.size(); ++i) out[i] = xv[ravel(map(unravel_index(static_cast<int64_t>(i), out_shape)), x.shape())];
  return ref_tensor(out_shape, out);
}

// Every op returns the element in row-major order, so reshape-like refs are the identity on values.
Tensor ref_same_values(const Tensor& x, const Shape& shape) { return ref_tensor(shape, x.to_vector<double>()); }

}  // namespace

TEST_CASE("reshape and view") {
  std::vector<std::pair<Shape, Shape>> cases = {
      {{2, 3, 4}, {6, 4}}, {{2, 3, 4}, {4, -1}}, {{7}, {7, 1}}, {{1, 5}, {5}}, {{3, 5}, {15}}, {{}, {1, 1}}};
  for (const auto& reshape_case : cases) {
    const Shape& in = reshape_case.first;
    const Shape& out = reshape_case.second;
    Shape resolved = out;
    int64_t known = 1;
    for (int64_t s : out) known *= s == -1 ? 1 : s;
    for (int64_t& s : resolved)
      if (s == -1) s = shape_numel(in) / known;
    check_op_case({"reshape " + shape_str(in) + "->" + shape_str(out), {{in}},
                   [out](const Inputs& x) { return reshape(x[0], out); },
                   [resolved](const Inputs& x) { return ref_same_values(x[0], resolved); }});
  }
  Tensor x = zeros({4, 6});
  Tensor v = view(x, {2, 12});
  CHECK(v.shares_storage_with(x));
  CHECK(v.raw_data() == x.raw_data());
}

TEST_CASE("permute and transpose") {
  check_op_case({"permute [2,3,4] (2,0,1)", {{{2, 3, 4}}}, [](const Inputs& x) { return permute(x[0], {2, 0, 1}); },
                 [](const Inputs& x) {
                   return ref_gather_view(x[0], {4, 2, 3}, [](const std::vector<int64_t>& o) {
                     return std::vector<int64_t>{o[1], o[2], o[0]};
                   });
                 }});
  check_op_case({"transpose [3,5] (0,1)", {{{3, 5}}}, [](const Inputs& x) { return transpose(x[0], 0, -1); },
                 [](const Inputs& x) {
                   return ref_gather_view(x[0], {5, 3}, [](const std::vector<int64_t>& o) {
                     return std::vector<int64_t>{o[1], o[0]};
                   });
                 }});
  check_op_case({"transpose [2,1,3] (0,2)", {{{2, 1, 3}}}, [](const Inputs& x) { return transpose(x[0], 0, 2); },
                 [](const Inputs& x) {
                   return ref_gather_view(x[0], {3, 1, 2}, [](const std::vector<int64_t>& o) {
                     return std::vector<int64_t>{o[2], o[1], o[0]};
                   });
                 }});
  Tensor x = zeros({3, 4});
  CHECK(transpose(x, 0, 1).shares_storage_with(x));
  CHECK(!transpose(x, 0, 1).is_contiguous());
}

TEST_CASE("narrow, slice and select") {
  check_op_case({"narrow [5,4] dim0 1..4", {{{5, 4}}}, [](const Inputs& x) { return narrow(x[0], 0, 1, 3); },
                 [](const Inputs& x) {
                   return ref_gather_view(x[0], {3, 4}, [](const std::vector<int64_t>& o) {
                     return std::vector<int64_t>{o[0] + 1, o[1]};
                   });
                 }});
  check_op_case({"slice [3,7] dim-1 -5:-1", {{{3, 7}}}, [](const Inputs& x) { return slice(x[0], -1, -5, -1); },
                 [](const Inputs& x) {
                   return ref_gather_view(x[0], {3, 4}, [](const std::vector<int64_t>& o) {
                     return std::vector<int64_t>{o[0], o[1] + 2};
                   });
                 }});
  check_op_case({"slice clamps [6] 4:100", {{{6}}}, [](const Inputs& x) { return slice(x[0], 0, 4, 100); },
                 [](const Inputs& x) {
                   return ref_gather_view(x[0], {2}, [](const std::vector<int64_t>& o) {
                     return std::vector<int64_t>{o[0] + 4};
                   });
                 }});
  check_op_case({"select [2,3,4] dim1 idx-1", {{{2, 3, 4}}}, [](const Inputs& x) { return select(x[0], 1, -1); },
                 [](const Inputs& x) {
                   return ref_gather_view(x[0], {2, 4}, [](const std::vector<int64_t>& o) {
                     return std::vector<int64_t>{o[0], 2, o[1]};
                   });
                 }});
  check_op_case({"select [5] -> 0-d", {{{5}}}, [](const Inputs& x) { return select(x[0], 0, 3); },
                 [](const Inputs& x) { return ref_tensor({}, {x[0].to_vector<double>()[3]}); }});
  Tensor x = zeros({5, 4});
  CHECK(narrow(x, 1, 1, 2).shares_storage_with(x));
  CHECK(slice(x, 0, 3, 1).numel() == 0);
}

TEST_CASE("unsqueeze, squeeze, expand") {
  check_op_case({"unsqueeze [3,4] at 1", {{{3, 4}}}, [](const Inputs& x) { return unsqueeze(x[0], 1); },
                 [](const Inputs& x) { return ref_same_values(x[0], {3, 1, 4}); }});
  check_op_case({"unsqueeze [3,4] at -1", {{{3, 4}}}, [](const Inputs& x) { return unsqueeze(x[0], -1); },
                 [](const Inputs& x) { return ref_same_values(x[0], {3, 4, 1}); }});
  check_op_case({"squeeze [3,1,4] at 1", {{{3, 1, 4}}}, [](const Inputs& x) { return squeeze(x[0], 1); },
                 [](const Inputs& x) { return ref_same_values(x[0], {3, 4}); }});
  check_op_case({"expand [3,1] -> [2,3,5]", {{{3, 1}}}, [](const Inputs& x) { return expand(x[0], {2, 3, 5}); },
                 [](const Inputs& x) {
                   return ref_gather_view(x[0], {2, 3, 5}, [](const std::vector<int64_t>& o) {
                     return std::vector<int64_t>{o[1], 0};
                   });
                 }});
  check_op_case({"expand [1,4] -> [-1... 3,4]", {{{1, 4}}}, [](const Inputs& x) { return expand(x[0], {3, -1}); },
                 [](const Inputs& x) {
                   return ref_gather_view(x[0], {3, 4}, [](const std::vector<int64_t>& o) {
                     return std::vector<int64_t>{0, o[1]};
                   });
                 }});
  Tensor x = zeros({3, 1});
  Tensor e = expand(x, {3, 1000});
  CHECK(e.shares_storage_with(x));
  CHECK(e.stride(1) == 0);
}

TEST_CASE("contiguous copies only when needed") {
  check_op_case({"contiguous of transpose", {{{4, 3}}}, [](const Inputs& x) { return contiguous(transpose(x[0], 0, 1)); },
                 [](const Inputs& x) {
                   return ref_gather_view(x[0], {3, 4}, [](const std::vector<int64_t>& o) {
                     return std::vector<int64_t>{o[1], o[0]};
                   });
                 }});
  Tensor x = zeros({4, 3});
  CHECK(contiguous(x).raw_data() == x.raw_data());
  Tensor t = transpose(x, 0, 1);
  Tensor c = contiguous(t);
  CHECK(c.is_contiguous());
  CHECK(!c.shares_storage_with(x));
  CHECK(clone(x).raw_data() != x.raw_data());
}

TEST_CASE("view errors name the op and the shapes") {
  Tensor x = zeros({2, 3});
  std::vector<ErrorCase> cases = {
      {"reshape count", [&] { reshape(x, {4, 2}); }, {"reshape", "[2, 3]", "[4, 2]"}},
      {"view non-dense", [&] { view(transpose(x, 0, 1), {6}); }, {"view", "[3, 2]", "reshape"}},
      {"two -1", [&] { reshape(x, {-1, -1}); }, {"reshape", "-1"}},
      {"permute dims", [&] { permute(x, {0}); }, {"permute", "[2, 3]"}},
      {"permute repeat", [&] { permute(x, {1, 1}); }, {"permute", "repeated"}},
      {"transpose dim", [&] { transpose(x, 0, 2); }, {"transpose", "dim 2"}},
      {"narrow range", [&] { narrow(x, 1, 2, 2); }, {"narrow", "[2, 3]"}},
      {"select range", [&] { select(x, 0, 2); }, {"select", "index 2", "[2, 3]"}},
      {"squeeze size", [&] { squeeze(x, 0); }, {"squeeze", "[2, 3]", "size 2"}},
      {"expand size", [&] { expand(x, {4, 3}); }, {"expand", "[2, 3]", "[4, 3]"}},
      {"expand fewer dims", [&] { expand(x, {3}); }, {"expand", "[2, 3]", "[3]"}},
  };
  for (const ErrorCase& c : cases) check_error_case(c);
}
