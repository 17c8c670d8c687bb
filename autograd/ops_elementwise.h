// Differentiable elementwise ops. Binary ops need equal shapes and dtypes: broadcasting is explicit
// (broadcast_to in autograd/ops_view.h), so every gradient reduction is visible in the code.
#pragma once

#include "tensor/tensor.h"

namespace hydra {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor sigmoid(const Tensor& x);
Tensor silu(const Tensor& x);  // x * sigmoid(x)

Tensor mul_scalar(const Tensor& x, double s);
Tensor add_scalar(const Tensor& x, double s);

// Converts between dtypes (a copy). Differentiable between float32 and float64 (the gradient is cast
// back); to an integer dtype it is a plain conversion with no gradient.
Tensor cast(const Tensor& x, DType dtype);

}  // namespace hydra
