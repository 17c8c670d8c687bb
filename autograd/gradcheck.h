// gradcheck: compares the gradients backward() computes with central finite differences, over the full
// Jacobian, in float64.
//
//   J_analytic[j][e]  = d out[j] / d input[e], from backward() with a one-hot upstream gradient per j
//   J_numeric[j][e]   = (f(x + eps·e) - f(x - eps·e))[j] / (2 eps)
//
// and requires |analytic - numeric| <= atol + rtol·|numeric| everywhere. Meant for small inputs: it
// runs the function 1 + out.numel() times with grad and 2 × (inputs' numel) times without.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace hydra {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-7;
  double rtol = 1e-5;
};

struct GradcheckResult {
  bool ok = true;
  double max_error = 0;  // largest |analytic - numeric| seen
  std::string report;    // where the worst entry is, and both values
};

// `inputs` are float64 leaves; those with requires_grad are checked (others are held constant).
// f must return a float64 tensor and must not keep state between calls.
GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& options = {});

}  // namespace hydra
