#include "op_harness.h"

#include <doctest/doctest.h>

#include <cmath>
#include <sstream>

#include "autograd/gradcheck.h"
#include "tensor/copy.h"

namespace hydra::test {

namespace {

// Largest |got - want| / max(1, |want|), and where it happens.
struct Diff {
  double worst = 0;
  int64_t index = -1;
  double got = 0, want = 0;
};

Diff compare(const Tensor& got, const Tensor& want) {
  Diff d;
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    double err = std::abs(g[i] - w[i]) / std::max(1.0, std::abs(w[i]));
    if (std::isnan(g[i]) != std::isnan(w[i])) err = INFINITY;
    if (std::isnan(g[i]) && std::isnan(w[i])) err = 0;
    if (err > d.worst || (d.index < 0 && err > 0)) {
      d.worst = err;
      d.index = static_cast<int64_t>(i);
      d.got = g[i];
      d.want = w[i];
    }
  }
  return d;
}

std::string describe(const Diff& d) {
  std::ostringstream os;
  os << "max rel diff " << d.worst << " at element " << d.index << " (got " << d.got << ", want " << d.want
     << ")";
  return os.str();
}

void check_forward(const OpCase& c, DType dtype, double tol) {
  Inputs x = make_inputs(c.inputs, dtype, 1234, false);
  Inputs x64 = make_inputs(c.inputs, DType::Float64, 1234, false);
  Tensor got = c.op(x);
  Tensor want = c.reference(x64);
  INFO("case '", c.name, "' forward in ", std::string(dtype_name(dtype)));
  REQUIRE_MESSAGE(got.shape() == want.shape(), "shape ", shape_str(got.shape()), " vs reference ",
                  shape_str(want.shape()));
  Diff d = compare(got, want);
  CHECK_MESSAGE(d.worst <= tol, describe(d));
}

void check_gradient(const OpCase& c, bool non_contiguous) {
  Inputs x = make_inputs(c.inputs, DType::Float64, 99, non_contiguous);
  bool any = false;
  for (size_t i = 0; i < x.size(); ++i) {
    if (is_floating(x[i].dtype()) && c.inputs[i].differentiable) {
      x[i].set_requires_grad(true);
      any = true;
    }
  }
  REQUIRE_MESSAGE(any, "case '", c.name, "' has no differentiable input; set check_grad = false");
  GradcheckOptions opt;
  opt.atol = c.grad_atol;
  opt.rtol = c.grad_rtol;
  GradcheckResult r = gradcheck(c.op, x, opt);
  INFO("case '", c.name, "' gradcheck", non_contiguous ? " (non-contiguous inputs)" : "");
  CHECK_MESSAGE(r.ok, r.report);
}

void check_layout(const OpCase& c) {
  for (DType dtype : {DType::Float32, DType::Float64}) {
    Tensor dense = c.op(make_inputs(c.inputs, dtype, 7, false));
    Inputs strided_inputs = make_inputs(c.inputs, dtype, 7, true);
    Tensor strided = c.op(strided_inputs);
    INFO("case '", c.name, "' non-contiguous inputs, ", std::string(dtype_name(dtype)));
    REQUIRE(dense.shape() == strided.shape());
    Diff d = compare(strided, dense);
    double tol = c.layout_exact ? 0.0 : (dtype == DType::Float64 ? c.forward_tol : c.float32_tol);
    CHECK_MESSAGE(d.worst <= tol, describe(d));
  }
}

}  // namespace

Inputs make_inputs(const std::vector<InputSpec>& specs, DType dtype, uint64_t seed, bool non_contiguous) {
  Inputs out;
  Generator gen(seed);
  for (const InputSpec& s : specs) {
    Tensor values;  // dense
    switch (s.fill) {
      case Fill::Normal: values = gen.normal(s.shape, 0, 1, DType::Float64); break;
      case Fill::Positive: values = gen.uniform(s.shape, 0.5, 2.0, DType::Float64); break;
      case Fill::Index: values = gen.randint(s.shape, 0, s.index_high, s.index_dtype); break;
      case Fill::Distinct: {
        // A shuffled grid of values 0.1 apart: no ties, and far enough apart for finite differences.
        values = gen.normal(s.shape, 0, 1, DType::Float64);
        std::vector<double> v = values.to_vector<double>();
        std::vector<std::pair<double, size_t>> order;
        for (size_t i = 0; i < v.size(); ++i) order.push_back({v[i], i});
        std::sort(order.begin(), order.end());
        for (size_t r = 0; r < order.size(); ++r)
          v[order[r].second] = 0.1 * (static_cast<double>(r) - static_cast<double>(order.size()) / 2);
        values = from_vector(v, s.shape);
        break;
      }
    }
    DType want = s.fill == Fill::Index ? s.index_dtype : dtype;
    Tensor t;
    const int64_t nd = static_cast<int64_t>(s.shape.size());
    if (!non_contiguous || nd == 0) {
      t = kernels::cast_raw(values, want);
    } else if (nd == 1) {
      // Every other element of a buffer twice as long.
      Tensor buf = zeros({s.shape[0], 2}, want);
      t = select(buf, 1, 0);
      kernels::copy_into(t, values);
    } else {
      // Storage with the last two dims swapped, viewed back through a transpose.
      Shape swapped = s.shape;
      std::swap(swapped[nd - 1], swapped[nd - 2]);
      Tensor buf = zeros(swapped, want);
      t = transpose(buf, -1, -2);
      kernels::copy_into(t, values);
    }
    out.push_back(t.detach());
  }
  return out;
}

void check_op_case(const OpCase& c) {
  check_forward(c, DType::Float64, c.forward_tol);
  check_forward(c, DType::Float32, c.float32_tol);
  check_layout(c);
  if (c.check_grad) {
    check_gradient(c, false);
    check_gradient(c, true);
  }
}

void check_error_case(const ErrorCase& c) {
  INFO("error case '", c.name, "'");
  bool threw = false;
  try {
    c.call();
  } catch (const Error& e) {
    threw = true;
    std::string msg = e.what();
    for (const std::string& part : c.must_contain)
      CHECK_MESSAGE(msg.find(part) != std::string::npos, "message '", msg, "' lacks '", part, "'");
  }
  CHECK_MESSAGE(threw, "expected a hydra::Error");
}

Tensor ref_tensor(const Shape& shape, const std::vector<double>& values) { return from_vector(values, shape); }

Tensor with_ignored(const Tensor& targets, int64_t ignore_index) {
  std::vector<int64_t> t = targets.to_vector<int64_t>();
  for (size_t r = 1; r < t.size(); r += 3) t[r] = ignore_index;
  return from_vector(t, targets.shape());
}

Tensor ref_map1(const Tensor& x, const std::function<double(double)>& f) {
  std::vector<double> v = x.to_vector<double>();
  for (double& e : v) e = f(e);
  return ref_tensor(x.shape(), v);
}

Tensor ref_map2(const Tensor& a, const Tensor& b, const std::function<double(double, double)>& f) {
  std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  for (size_t i = 0; i < va.size(); ++i) va[i] = f(va[i], vb[i]);
  return ref_tensor(a.shape(), va);
}

int64_t ravel(const std::vector<int64_t>& index, const Shape& shape) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + index[d];
  return flat;
}

}  // namespace hydra::test
