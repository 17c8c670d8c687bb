#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autograd/grad_mode.h"
#include "tensor/strided.h"

namespace hydra {

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& options) {
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    HYDRA_CHECK(x.dtype() == DType::Float64, "gradcheck: input ", k, " is ", dtype_name(x.dtype()),
                "; gradcheck runs in float64");
    HYDRA_CHECK(x.is_leaf(), "gradcheck: input ", k, " is not a leaf");
  }
  Tensor out0;
  {
    NoGradGuard no_grad;
    out0 = f(inputs);
  }
  HYDRA_CHECK(out0.dtype() == DType::Float64, "gradcheck: f returned ", dtype_name(out0.dtype()),
              ", expected float64");
  const int64_t n_out = out0.numel();

  GradcheckResult result;
  double worst = -1;
  auto compare = [&](size_t k, int64_t e, int64_t j, double analytic, double numeric) {
    double err = std::abs(analytic - numeric);
    result.max_error = std::max(result.max_error, err);
    bool bad = !(err <= options.atol + options.rtol * std::abs(numeric));  // NaN counts as bad
    double score = bad ? 1e300 : err;  // report the first failure, else the largest error
    if (bad) result.ok = false;
    if (score > worst) {
      worst = score;
      std::ostringstream os;
      os << "input " << k << " element " << e << " -> output element " << j << ": analytic " << analytic
         << ", numeric " << numeric << ", |diff| " << err;
      result.report = os.str();
    }
  };

  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    const int64_t n_in = x.numel();

    // Analytic Jacobian, one row per output element: rows[j][e].
    std::vector<std::vector<double>> rows(n_out);
    for (int64_t j = 0; j < n_out; ++j) {
      for (const Tensor& t : inputs)
        if (t.defined() && t.requires_grad()) t.zero_grad();
      Tensor out = f(inputs);
      HYDRA_CHECK(out.requires_grad(), "gradcheck: f's output does not require grad");
      Tensor upstream = zeros(out.shape(), DType::Float64);
      upstream.data<double>()[j] = 1.0;
      out.backward(upstream);
      Tensor g = x.grad();
      rows[j] = g.defined() ? g.to_vector<double>() : std::vector<double>(n_in, 0.0);
    }

    // Numeric Jacobian, one column per input element, perturbing x's storage in place.
    std::vector<int64_t> offsets;
    for_each_offset(x.shape(), x.strides(), x.offset(), [&](int64_t off) { offsets.push_back(off); });
    double* base = x.storage_data<double>();
    NoGradGuard no_grad;
    for (int64_t e = 0; e < n_in; ++e) {
      double& v = base[offsets[e]];
      const double saved = v;
      v = saved + options.eps;
      std::vector<double> plus = f(inputs).to_vector<double>();
      v = saved - options.eps;
      std::vector<double> minus = f(inputs).to_vector<double>();
      v = saved;
      for (int64_t j = 0; j < n_out; ++j)
        compare(k, e, j, rows[j][e], (plus[j] - minus[j]) / (2 * options.eps));
    }
  }
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) t.zero_grad();
  return result;
}

}  // namespace hydra
