// The non-attention OLMo-2 layers (nn/linear, embedding, rms_norm, feed_forward, lm_head):
//   - each op through the table harness: forward vs plain float64 loops (float64 and float32),
//     non-contiguous inputs, gradcheck in float64 (contiguous and non-contiguous), for the fused op and
//     for its *_reference;
//   - each fused op vs its *_reference: forward and the gradient of every input (all at once and one at
//     a time) under a random upstream gradient, float64 to 1e-12 and float32 to 1e-5;
//   - errors, thread-count independence, and the layer-level contracts (LMHead last_token_only,
//     Linear on (B, T, C) = per-row products, FeedForward = w2(silu(w1 x) * w3 x)).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <sstream>

#include "nn/embedding.h"
#include "nn/feed_forward.h"
#include "nn/init.h"
#include "nn/lm_head.h"
#include "nn/linear.h"
#include "nn/rms_norm.h"
#include "support/op_harness.h"
#include "support/threads.h"
#include "tensor/bfloat16.h"
#include "tensor/copy.h"
#include "tensor/parallel.h"

using namespace hydra;
using namespace hydra::nn;
using namespace hydra::test;

namespace {

constexpr double kEps = 1e-6;  // OLMo-2's RMSNorm eps

// ---- plain float64 loops: the independent references for the harness ----

// y[r, o] = Σ_i x[r, i] w[o, i] over the rows r of x (..., in).
Tensor loop_linear(const Tensor& x, const Tensor& w) {
  const int64_t in = w.size(1), out = w.size(0), rows = x.numel() / in;
  std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>(), y(rows * out);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = 0;
      for (int64_t i = 0; i < in; ++i) s += xv[r * in + i] * wv[o * in + i];
      y[r * out + o] = s;
    }
  Shape shape = x.shape();
  shape.back() = out;
  return ref_tensor(shape, y);
}

Tensor loop_rms_norm(const Tensor& x, const Tensor& w) {
  const int64_t c = w.numel(), rows = x.numel() / c;
  std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>(), y(xv.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t k = 0; k < c; ++k) ss += xv[r * c + k] * xv[r * c + k];
    const double s = 1.0 / std::sqrt(ss / double(c) + kEps);
    for (int64_t k = 0; k < c; ++k) y[r * c + k] = xv[r * c + k] * s * wv[k];
  }
  return ref_tensor(x.shape(), y);
}

Tensor loop_swiglu(const Tensor& g, const Tensor& u) {
  return ref_map2(g, u, [](double a, double b) { return a / (1.0 + std::exp(-a)) * b; });
}

Tensor loop_embedding(const Tensor& ids, const Tensor& w) {
  const int64_t c = w.size(1);
  std::vector<int64_t> iv = ids.to_vector<int64_t>();
  std::vector<double> wv = w.to_vector<double>(), y;
  for (int64_t id : iv) y.insert(y.end(), wv.begin() + id * c, wv.begin() + (id + 1) * c);
  Shape shape = ids.shape();
  shape.push_back(c);
  return ref_tensor(shape, y);
}

// ---- fused vs reference under backward ----

struct Diff {
  double worst = 0;  // max |got - want| / max(1, |want|)
  int64_t index = -1;
  double got = 0, want = 0;
};

Diff rel_diff(const Tensor& got, const Tensor& want) {
  Diff d;
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    const double err = std::abs(g[i] - w[i]) / std::max(1.0, std::abs(w[i]));
    if (!(err <= d.worst)) d = {std::isnan(err) ? INFINITY : err, static_cast<int64_t>(i), g[i], w[i]};
  }
  return d;
}

void check_close(const std::string& what, const Tensor& got, const Tensor& want, double tol) {
  INFO(what);
  REQUIRE_MESSAGE(got.shape() == want.shape(), shape_str(got.shape()), " vs ", shape_str(want.shape()));
  const Diff d = rel_diff(got, want);
  CHECK_MESSAGE(d.worst <= tol, "max rel diff ", d.worst, " at element ", d.index, " (got ", d.got, ", want ",
                d.want, ")");
}

// f on fresh leaves holding `values`; input i requires grad when wants[i]. Returns the output and then
// the gradient of each wanted input, after backward with a random upstream gradient from `seed`.
std::vector<Tensor> forward_backward(const OpFn& f, const Inputs& values, const std::vector<bool>& wants,
                                     uint64_t seed) {
  Inputs leaves;
  for (size_t i = 0; i < values.size(); ++i) {
    leaves.push_back(values[i].detach());
    if (wants[i]) leaves.back().set_requires_grad(true);
  }
  Tensor out = f(leaves);
  out.backward(Generator(seed).normal(out.shape(), 0, 1, out.dtype()));
  std::vector<Tensor> result{out};
  for (size_t i = 0; i < leaves.size(); ++i)
    if (wants[i]) result.push_back(leaves[i].grad());
  return result;
}

// The fused op and its reference agree on the forward and on every gradient, with all float inputs
// differentiable and then each alone (the backward skips the gradients nobody needs).
void check_fused_vs_reference(const std::string& name, const OpFn& fused, const OpFn& reference,
                              const std::vector<InputSpec>& specs) {
  for (DType dtype : {DType::Float64, DType::Float32}) {
    const double tol = dtype == DType::Float64 ? 1e-12 : 1e-5;
    for (bool non_contiguous : {false, true}) {
      Inputs values = make_inputs(specs, dtype, 42, non_contiguous);
      std::vector<std::vector<bool>> masks(1);
      for (size_t i = 0; i < specs.size(); ++i) masks[0].push_back(specs[i].fill != Fill::Index);
      for (size_t i = 0; i < specs.size(); ++i) {
        if (!masks[0][i]) continue;
        std::vector<bool> only(specs.size(), false);
        only[i] = true;
        masks.push_back(only);
      }
      for (const auto& mask : masks) {
        std::vector<Tensor> got = forward_backward(fused, values, mask, 7);
        std::vector<Tensor> want = forward_backward(reference, values, mask, 7);
        REQUIRE(got.size() == want.size());
        std::ostringstream what;
        what << name << " " << dtype_name(dtype) << (non_contiguous ? " non-contiguous" : "") << ", grads of";
        for (size_t i = 0; i < mask.size(); ++i)
          if (mask[i]) what << " " << i;
        check_close(what.str() + ": forward", got[0], want[0], tol);
        for (size_t k = 1; k < got.size(); ++k)
          check_close(what.str() + ": gradient " + std::to_string(k), got[k], want[k], tol);
      }
    }
  }
}

std::string errors_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("linear, rms_norm, swiglu, embedding and their references through the op harness") {
  const std::vector<std::pair<Shape, Shape>> linear_shapes = {
      {{2, 3, 5}, {4, 5}}, {{3, 5}, {4, 5}}, {{5}, {3, 5}}, {{1, 1}, {1, 1}}, {{2, 1, 3, 2}, {7, 2}}};
  for (const auto& [xs, ws] : linear_shapes) {
    for (bool ref : {false, true}) {
      OpCase c{std::string(ref ? "linear_reference " : "linear ") + shape_str(xs) + " x " + shape_str(ws),
               {{xs}, {ws}},
               [ref](const Inputs& x) { return ref ? linear_reference(x[0], x[1]) : linear(x[0], x[1]); },
               [](const Inputs& x) { return loop_linear(x[0], x[1]); }};
      // A transposed 2-D x reaches GEMM as a transpose flag: same math, possibly another rounding.
      c.layout_exact = false;
      check_op_case(c);
    }
  }
  const std::vector<Shape> norm_shapes = {{2, 3, 5}, {7}, {1, 1}, {4, 1, 6}, {70, 3}};
  for (const Shape& s : norm_shapes) {
    for (bool ref : {false, true}) {
      OpCase c{std::string(ref ? "rms_norm_reference " : "rms_norm ") + shape_str(s),
               {{s}, {{s.back()}}},
               [ref](const Inputs& x) {
                 return ref ? rms_norm_reference(x[0], x[1], kEps) : rms_norm(x[0], x[1], kEps);
               },
               [](const Inputs& x) { return loop_rms_norm(x[0], x[1]); }};
      check_op_case(c);
    }
  }
  const std::vector<Shape> swiglu_shapes = {{2, 3, 5}, {7}, {1}, {3, 1, 4}};
  for (const Shape& s : swiglu_shapes) {
    for (bool ref : {false, true}) {
      OpCase c{std::string(ref ? "swiglu_reference " : "swiglu ") + shape_str(s),
               {{s}, {s}},
               [ref](const Inputs& x) { return ref ? swiglu_reference(x[0], x[1]) : swiglu(x[0], x[1]); },
               [](const Inputs& x) { return loop_swiglu(x[0], x[1]); }};
      check_op_case(c);
    }
  }
  for (DType index_dtype : {DType::Int32, DType::Int64}) {
    for (const Shape& s : std::vector<Shape>{{2, 3}, {1, 1}, {4, 9}}) {
      OpCase c{std::string("embedding ") + dtype_name(index_dtype) + " " + shape_str(s),
               {{s, Fill::Index, 5, index_dtype}, {{5, 3}}},
               [](const Inputs& x) { return embedding(x[0], x[1]); },
               [](const Inputs& x) { return loop_embedding(x[0], x[1]); }};
      check_op_case(c);
    }
  }
}

TEST_CASE("fused ops match their *_reference: forward and the gradient of every input") {
  // Shapes with odd sizes, C not a multiple of the 8 summation lanes, and rms_norm rows spanning several
  // 64-row blocks of the dw sum (150 rows: two full blocks and a partial one).
  check_fused_vs_reference("rms_norm (3, 50, 67)",
                           [](const Inputs& x) { return rms_norm(x[0], x[1], kEps); },
                           [](const Inputs& x) { return rms_norm_reference(x[0], x[1], kEps); },
                           {{{3, 50, 67}}, {{67}}});
  check_fused_vs_reference("rms_norm (2, 3, 5)",
                           [](const Inputs& x) { return rms_norm(x[0], x[1], kEps); },
                           [](const Inputs& x) { return rms_norm_reference(x[0], x[1], kEps); },
                           {{{2, 3, 5}}, {{5}}});
  check_fused_vs_reference("rms_norm (9, 1), eps 0.5",
                           [](const Inputs& x) { return rms_norm(x[0], x[1], 0.5); },
                           [](const Inputs& x) { return rms_norm_reference(x[0], x[1], 0.5); },
                           {{{9, 1}}, {{1}}});
  check_fused_vs_reference("swiglu (4, 33, 71)",
                           [](const Inputs& x) { return swiglu(x[0], x[1]); },
                           [](const Inputs& x) { return swiglu_reference(x[0], x[1]); },
                           {{{4, 33, 71}}, {{4, 33, 71}}});
  // Gates far into both tails: sigmoid saturates at 0 and 1 without NaN.
  check_fused_vs_reference("swiglu, gate x 40",
                           [](const Inputs& x) { return swiglu(mul_scalar(x[0], 40.0), x[1]); },
                           [](const Inputs& x) { return swiglu_reference(mul_scalar(x[0], 40.0), x[1]); },
                           {{{5, 37}}, {{5, 37}}});
  check_fused_vs_reference("linear (3, 7, 33) x (17, 33)",
                           [](const Inputs& x) { return linear(x[0], x[1]); },
                           [](const Inputs& x) { return linear_reference(x[0], x[1]); },
                           {{{3, 7, 33}}, {{17, 33}}});
  check_fused_vs_reference("linear (21, 33) x (17, 33)",
                           [](const Inputs& x) { return linear(x[0], x[1]); },
                           [](const Inputs& x) { return linear_reference(x[0], x[1]); },
                           {{{21, 33}}, {{17, 33}}});
}

TEST_CASE("layer errors name the op and both shapes") {
  Tensor x = zeros({2, 3, 5}), w = zeros({4, 6});
  std::vector<ErrorCase> cases = {
      {"linear weight", [&] { linear(x, w); }, {"linear", "[2, 3, 5]", "[4, 6]"}},
      {"linear 1-D weight", [&] { linear(x, zeros({5})); }, {"linear", "[2, 3, 5]", "[5]"}},
      {"linear dtype", [&] { linear(x, zeros({4, 5}, DType::Float64)); }, {"linear", "float32", "float64"}},
      {"linear_reference weight", [&] { linear_reference(x, w); }, {"linear", "[2, 3, 5]", "[4, 6]"}},
      {"rms_norm weight", [&] { rms_norm(x, zeros({4}), kEps); }, {"rms_norm", "[2, 3, 5]", "[4]"}},
      {"rms_norm 2-D weight", [&] { rms_norm(x, zeros({1, 5}), kEps); }, {"rms_norm", "[2, 3, 5]", "[1, 5]"}},
      {"rms_norm dtype", [&] { rms_norm(x, zeros({5}, DType::Float64), kEps); }, {"rms_norm", "float32", "float64"}},
      {"rms_norm ints", [&] { rms_norm(zeros({2, 5}, DType::Int64), zeros({5}, DType::Int64), kEps); },
       {"rms_norm", "int64", "[2, 5]"}},
      {"rms_norm_reference weight", [&] { rms_norm_reference(x, zeros({4}), kEps); }, {"rms_norm", "[4]"}},
      {"swiglu shapes", [&] { swiglu(x, zeros({2, 5, 3})); }, {"swiglu", "[2, 3, 5]", "[2, 5, 3]"}},
      {"swiglu_reference shapes", [&] { swiglu_reference(x, zeros({5})); }, {"swiglu", "[2, 3, 5]", "[5]"}},
      {"embedding float ids", [&] { embedding(zeros({2, 3}), zeros({7, 4})); }, {"embedding", "float32", "[2, 3]"}},
      {"embedding 1-D weight", [&] { embedding(zeros({2, 3}, DType::Int64), zeros({7})); }, {"embedding", "[7]"}},
  };
  for (const ErrorCase& c : cases) check_error_case(c);
}

TEST_CASE("a bad token id names the id, its position and the vocabulary size") {
  Tensor w = zeros({7, 4});
  for (DType dt : {DType::Int32, DType::Int64}) {
    Tensor ids = cast(from_vector<double>({0, 1, 2, 3, 6, 7}, {2, 3}), dt);
    std::string msg = errors_of([&] { embedding(ids, w); });
    CHECK_MESSAGE(msg.find("token id 7 at position [1, 2]") != std::string::npos, msg);
    CHECK_MESSAGE(msg.find("vocabulary of 7") != std::string::npos, msg);
    Tensor negative = cast(from_vector<double>({0, -1, 2, 3}, {2, 2}), dt);
    msg = errors_of([&] { embedding(negative, w); });
    CHECK_MESSAGE(msg.find("token id -1 at position [0, 1]") != std::string::npos, msg);
  }
  Embedding emb(7, 4);
  materialize_parameters(emb);
  std::string msg = errors_of([&] { emb.forward(from_vector<int64_t>({3, 100}, {1, 2})); });
  CHECK_MESSAGE(msg.find("token id 100 at position [0, 1]") != std::string::npos, msg);
}

TEST_CASE("embedding: rows of the table, and repeated tokens sum their gradients") {
  Tensor w = Generator(1).normal({6, 3}, 0, 1, DType::Float64).set_requires_grad();
  Tensor ids = from_vector<int64_t>({2, 5, 2, 0, 2, 5}, {2, 3});
  Tensor y = embedding(ids, w);
  REQUIRE(y.shape() == Shape{2, 3, 3});
  CHECK(y.to_vector<double>() == loop_embedding(ids, w).to_vector<double>());
  Tensor dy = Generator(2).normal({2, 3, 3}, 0, 1, DType::Float64);
  y.backward(dy);
  std::vector<double> dyv = dy.to_vector<double>(), want(18, 0.0);
  std::vector<int64_t> iv = ids.to_vector<int64_t>();
  for (size_t p = 0; p < iv.size(); ++p)
    for (int64_t k = 0; k < 3; ++k) want[iv[p] * 3 + k] += dyv[p * 3 + k];
  check_close("embedding dw", w.grad(), ref_tensor({6, 3}, want), 1e-15);
}

TEST_CASE("Linear on (B, T, C) equals the product of every row on its own") {
  Linear lin(5, 4);
  materialize_parameters(lin);
  Generator gen(3);
  init_normal_(lin.weight, gen, 0.5);
  Tensor x = Generator(4).normal({2, 3, 5});
  NoGradGuard no_grad;  // values only
  Tensor y = lin.forward(x);
  REQUIRE(y.shape() == Shape{2, 3, 4});
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 3; ++t) {
      Tensor row = reshape(select(select(x, 0, b), 0, t), {1, 5});               // shape: (1, C)
      Tensor want = matmul(row, transpose(lin.weight, 0, 1));                     // shape: (1, out)
      check_close("row " + std::to_string(b) + "," + std::to_string(t),
                  reshape(select(select(y, 0, b), 0, t), {1, 4}), want, 1e-6);
    }
}

TEST_CASE("FeedForward is w2(silu(w1 x) * w3 x), with the weight shapes of OLMo-core") {
  FeedForward ff(6, 10);
  CHECK(ff.w1.weight.shape() == Shape{10, 6});
  CHECK(ff.w3.weight.shape() == Shape{10, 6});
  CHECK(ff.w2.weight.shape() == Shape{6, 10});
  materialize_parameters(ff);
  Generator gen(5);
  for (auto& [name, p] : ff.named_parameters()) init_normal_(*p, gen, 0.3);
  Tensor x = Generator(6).normal({2, 3, 6}).set_requires_grad();
  Tensor dy = Generator(7).normal({2, 3, 6});
  Tensor y = ff.forward(x);
  y.backward(dy);
  std::vector<Tensor> got{y, x.grad(), ff.w1.weight.grad(), ff.w2.weight.grad(), ff.w3.weight.grad()};
  for (auto& [name, p] : ff.named_parameters()) p->zero_grad();
  Tensor x2 = x.detach().set_requires_grad();
  Tensor want_y = linear_reference(swiglu_reference(linear_reference(x2, ff.w1.weight),
                                                    linear_reference(x2, ff.w3.weight)),
                                   ff.w2.weight);
  want_y.backward(dy);
  std::vector<Tensor> want{want_y, x2.grad(), ff.w1.weight.grad(), ff.w2.weight.grad(), ff.w3.weight.grad()};
  const char* names[] = {"y", "dx", "dw1", "dw2", "dw3"};
  for (size_t i = 0; i < got.size(); ++i) check_close(names[i], got[i], want[i], 1e-5);
}

TEST_CASE("LMHead: last_token_only gives the last row of the full output, and gradient only there") {
  LMHead head(8, 11, kEps);
  materialize_parameters(head);
  Generator gen(8);
  init_normal_(head.w_out.weight, gen, 0.3);
  kernels::copy_into(head.norm.weight, Generator(9).uniform({8}, 0.5, 1.5));
  Tensor x = Generator(10).normal({2, 5, 8});
  Tensor full = head.forward(x);
  REQUIRE(full.shape() == Shape{2, 5, 11});
  // The full output is the norm then the projection, position by position.
  check_close("full", full, linear(rms_norm(x, head.norm.weight, kEps), head.w_out.weight), 0);
  Tensor xs = x.detach().set_requires_grad();
  Tensor last = head.forward(xs, /*last_token_only=*/true);
  REQUIRE(last.shape() == Shape{2, 1, 11});
  check_close("last", last, narrow(full, 1, 4, 1), 1e-6);  // another GEMM shape: float32 rounding
  last.backward(Generator(11).normal({2, 1, 11}));
  std::vector<double> dx = xs.grad().to_vector<double>();
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t t = 0; t < 5; ++t)
      for (int64_t c = 0; c < 8; ++c) {
        const double v = dx[(b * 5 + t) * 8 + c];
        if (t < 4) CHECK(v == 0.0);
        else CHECK(v != 0.0);
      }
  CHECK_MESSAGE(errors_of([&] { head.forward(zeros({2, 5, 7})); }).find("[2, 5, 7]") != std::string::npos,
                "LMHead names the input shape");
  CHECK(errors_of([&] { head.forward(zeros({0, 0, 8}), true); }).find("LMHead") != std::string::npos);
}

TEST_CASE("rms_norm, swiglu and linear are bit-identical for 1 and 2 threads (forward and backward)") {
  Tensor x = Generator(12).normal({4096, 512});
  Tensor w = Generator(13).uniform({512}, 0.5, 1.5);
  Tensor up = Generator(14).normal({4096, 512});
  Tensor lw = Generator(15).normal({256, 512}, 0, 0.05);
  Tensor dy = Generator(16).normal({4096, 512});
  Tensor dy_lin = Generator(17).normal({4096, 256});
  auto run = [&] {
    std::vector<Tensor> out;
    Tensor xs = x.detach().set_requires_grad(), ws = w.detach().set_requires_grad();
    Tensor y = rms_norm(xs, ws, kEps);
    y.backward(dy);
    out.insert(out.end(), {y, xs.grad(), ws.grad()});
    Tensor g = x.detach().set_requires_grad(), u = up.detach().set_requires_grad();
    Tensor s = swiglu(g, u);
    s.backward(dy);
    out.insert(out.end(), {s, g.grad(), u.grad()});
    Tensor xl = x.detach().set_requires_grad(), wl = lw.detach().set_requires_grad();
    Tensor l = linear(xl, wl);
    l.backward(dy_lin);
    out.insert(out.end(), {l, xl.grad(), wl.grad()});
    return out;
  };
  expect_thread_invariant(run, {"rms_norm y", "rms_norm dx", "rms_norm dw", "swiglu y", "swiglu dgate",
                                "swiglu dup", "linear y", "linear dx", "linear dw"});
}

// Decoding runs the products of one input (q/k/v, w1 and w3) as one parallel region, tiled as one stacked
// matrix; 300 + 129 + 700 output rows of 300 values make tiles that span two layers.
TEST_CASE("forward_shared_input gives every Linear's own forward, bit for bit, grouped or not") {
  std::vector<std::unique_ptr<Linear>> layers;
  Generator gen(21);
  for (int64_t out : {300, 129, 700}) {
    layers.push_back(std::make_unique<Linear>(300, out));
    materialize_parameters(*layers.back());
    init_normal_(layers.back()->weight, gen, 0.05);
  }
  auto same_bits = [](const Tensor& a, const Tensor& b) {
    const std::vector<float> x = a.to_vector<float>(), y = b.to_vector<float>();
    return a.shape() == b.shape() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
  };
  auto check_all = [&](const Tensor& x, const char* what) {
    const std::vector<Tensor> got = forward_shared_input({layers[0].get(), layers[1].get(), layers[2].get()}, x);
    REQUIRE(got.size() == 3);
    for (size_t i = 0; i < 3; ++i) {
      INFO(std::string(what), ": layer ", i, ", input ", shape_str(x.shape()));
      CHECK(same_bits(got[i], layers[i]->forward(x)));
    }
    return got;
  };
  for (const char* dtype : {"float32", "bfloat16"}) {
    if (std::string(dtype) == "bfloat16")
      for (auto& layer : layers) layer->weight = to_bfloat16(layer->weight);
    NoGradGuard no_grad;
    for (int64_t rows : {1, 3, 16, 17}) check_all(Generator(22).normal({1, rows, 300}), dtype);
    check_all(transpose(Generator(23).normal({300, 2}), 0, 1), dtype);  // strided: one product each
    Tensor x = Generator(24).normal({1, 1, 300});
    expect_thread_invariant(
        [&] { return forward_shared_input({layers[0].get(), layers[1].get(), layers[2].get()}, x); }, {"q", "k", "v"});
  }
  // With a graph, every layer records its own product: the gradient reaches x through all three.
  for (auto& layer : layers) layer->weight = bfloat16_to_float32(layer->weight);
  Tensor x = Generator(25).normal({1, 2, 300}).set_requires_grad();
  const std::vector<Tensor> got = check_all(x, "with a graph");
  add(add(sum(got[0]), sum(got[1])), sum(got[2])).backward();
  // d/dx of the sum of x Wᵀ over every output is the sum of W's rows, for each row of x.
  Tensor w_rows = add(add(sum(layers[0]->weight, {0}), sum(layers[1]->weight, {0})), sum(layers[2]->weight, {0}));
  check_close("dx", x.grad(), broadcast_to(reshape(w_rows, {1, 1, 300}), {1, 2, 300}), 1e-5);
}
