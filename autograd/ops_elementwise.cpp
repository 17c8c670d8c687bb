// Differentiable elementwise ops: each forward calls its kernel (tensor/elementwise.h) and records its
// backward rule directly below it. Backward rules are written with these same ops; they run with grad
// mode off, so they record nothing.
#include "autograd/ops_elementwise.h"

#include "autograd/record.h"
#include "tensor/copy.h"
#include "tensor/elementwise.h"

namespace hydra {

using kernels::Binary;
using kernels::Unary;

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = kernels::binary_raw(Binary::Add, a, b);
  return record("add", out, {a, b}, [](const Tensor& dout, const Needs& needs) {
    // forward: out = a + b, so da = dout and db = dout
    return Grads{needs[0] ? dout : Tensor(), needs[1] ? dout : Tensor()};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = kernels::binary_raw(Binary::Sub, a, b);
  return record("sub", out, {a, b}, [](const Tensor& dout, const Needs& needs) {
    // forward: out = a - b, so da = dout and db = -dout
    return Grads{needs[0] ? dout : Tensor(), needs[1] ? neg(dout) : Tensor()};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = kernels::binary_raw(Binary::Mul, a, b);
  return record("mul", out, {a, b}, [a = a.detach(), b = b.detach()](const Tensor& dout, const Needs& needs) {
    Grads g(2);
    if (needs[0]) g[0] = mul(dout, b);  // forward: out = a * b, so da = dout * b
    if (needs[1]) g[1] = mul(dout, a);  //                         db = dout * a
    return g;
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = kernels::binary_raw(Binary::Div, a, b);
  return record("div", out, {a, b},
                [b = b.detach(), out = out.detach()](const Tensor& dout, const Needs& needs) {
                  Grads g(2);
                  // forward: out = a / b, so da = dout / b
                  if (needs[0]) g[0] = div(dout, b);
                  // and db = -dout * a / b² = -dout * out / b
                  if (needs[1]) g[1] = neg(div(mul(dout, out), b));
                  return g;
                });
}

Tensor neg(const Tensor& x) {
  Tensor out = kernels::unary_raw(Unary::Neg, x);
  return record("neg", out, {x}, [](const Tensor& dout, const Needs&) {
    return Grads{neg(dout)};  // forward: out = -x
  });
}

Tensor exp(const Tensor& x) {
  Tensor out = kernels::unary_raw(Unary::Exp, x);
  return record("exp", out, {x}, [out = out.detach()](const Tensor& dout, const Needs&) {
    return Grads{mul(dout, out)};  // forward: out = e^x, so dx = dout * e^x = dout * out
  });
}

Tensor log(const Tensor& x) {
  Tensor out = kernels::unary_raw(Unary::Log, x);
  return record("log", out, {x}, [x = x.detach()](const Tensor& dout, const Needs&) {
    return Grads{div(dout, x)};  // forward: out = ln x, so dx = dout / x
  });
}

Tensor sqrt(const Tensor& x) {
  Tensor out = kernels::unary_raw(Unary::Sqrt, x);
  return record("sqrt", out, {x}, [out = out.detach()](const Tensor& dout, const Needs&) {
    // forward: out = x^(1/2), so dx = dout / (2 * out)
    return Grads{div(dout, mul_scalar(out, 2.0))};
  });
}

Tensor rsqrt(const Tensor& x) {
  Tensor out = kernels::unary_raw(Unary::Rsqrt, x);
  return record("rsqrt", out, {x}, [out = out.detach()](const Tensor& dout, const Needs&) {
    // forward: out = x^(-1/2), so dx = dout * (-1/2) x^(-3/2) = dout * (-1/2) * out³
    return Grads{mul(dout, mul_scalar(pow(out, 3.0), -0.5))};
  });
}

Tensor pow(const Tensor& x, double exponent) {
  Tensor out = kernels::pow_scalar_raw(x, exponent);
  return record("pow", out, {x}, [x = x.detach(), exponent](const Tensor& dout, const Needs&) {
    // forward: out = x^p, so dx = dout * p * x^(p-1)
    return Grads{mul(dout, mul_scalar(pow(x, exponent - 1.0), exponent))};
  });
}

Tensor sigmoid(const Tensor& x) {
  Tensor out = kernels::unary_raw(Unary::Sigmoid, x);
  return record("sigmoid", out, {x}, [out = out.detach()](const Tensor& dout, const Needs&) {
    // forward: s = 1 / (1 + e^-x), so dx = dout * s * (1 - s)
    return Grads{mul(dout, mul(out, add_scalar(neg(out), 1.0)))};
  });
}

Tensor silu(const Tensor& x) {
  Tensor out = kernels::unary_raw(Unary::Silu, x);
  return record("silu", out, {x}, [x = x.detach()](const Tensor& dout, const Needs&) {
    // forward: out = x * s with s = sigmoid(x), so dx = dout * (s + x * s * (1 - s))
    //                                                  = dout * s * (1 + x * (1 - s))
    Tensor s = kernels::unary_raw(Unary::Sigmoid, x);
    return Grads{mul(dout, mul(s, add_scalar(mul(x, add_scalar(neg(s), 1.0)), 1.0)))};
  });
}

Tensor mul_scalar(const Tensor& x, double s) {
  Tensor out = kernels::mul_scalar_raw(x, s);
  return record("mul_scalar", out, {x}, [s](const Tensor& dout, const Needs&) {
    return Grads{mul_scalar(dout, s)};  // forward: out = x * s
  });
}

Tensor add_scalar(const Tensor& x, double s) {
  Tensor out = kernels::add_scalar_raw(x, s);
  return record("add_scalar", out, {x}, [](const Tensor& dout, const Needs&) {
    return Grads{dout};  // forward: out = x + s
  });
}

Tensor cast(const Tensor& x, DType dtype) {
  Tensor out = kernels::cast_raw(x, dtype);
  if (!is_floating(dtype)) return out;  // integers carry no gradient
  DType from = x.dtype();
  return record("cast", out, {x}, [from](const Tensor& dout, const Needs&) {
    return Grads{cast(dout, from)};  // forward: out = (dtype) x
  });
}

}  // namespace hydra
