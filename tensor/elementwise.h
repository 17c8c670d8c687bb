// Elementwise kernels (no autograd): y = f(x) and z = f(a, b) over tensors of equal shape.
//
// Inputs of any layout are accepted (a non-dense input is made dense first); outputs are new dense
// tensors. float32 and float64 only. The differentiable wrappers are in autograd/ops_elementwise.h.
//
// Naming: no autograd here; `_raw` returns a new tensor, `_into` writes into dst (differentiable ops: autograd/).
#pragma once

#include "tensor/tensor.h"

namespace hydra::kernels {

enum class Unary { Neg, Exp, Log, Sqrt, Rsqrt, Sigmoid, Silu };
enum class Binary { Add, Sub, Mul, Div };

Tensor unary_raw(Unary op, const Tensor& x);
Tensor binary_raw(Binary op, const Tensor& a, const Tensor& b);  // shapes must be equal
Tensor pow_scalar_raw(const Tensor& x, double exponent);
Tensor mul_scalar_raw(const Tensor& x, double s);
Tensor add_scalar_raw(const Tensor& x, double s);

inline Tensor add_raw(const Tensor& a, const Tensor& b) { return binary_raw(Binary::Add, a, b); }

// dst += src in place (dst must be dense; shapes equal). For gradient accumulation.
void add_into(const Tensor& dst, const Tensor& src);

// The name an op uses in messages ("mul"), for table-driven code.
const char* binary_name(Binary op);
const char* unary_name(Unary op);

// Throws "<op>: shapes [2, 3] and [3, 2] differ (elementwise ops need equal shapes; broadcast
// explicitly with broadcast_to)" unless a and b have equal shapes and dtypes.
void check_same_shape(const char* op, const Tensor& a, const Tensor& b);

}  // namespace hydra::kernels
