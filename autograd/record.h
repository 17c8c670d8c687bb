// record(): how an op joins the autograd graph.
//
// Every differentiable op is written the same way (see autograd/ops_elementwise.cpp):
//
//   Tensor mul(const Tensor& a, const Tensor& b) {
//     check_same_shape("mul", a, b);
//     Tensor out = kernels::binary_raw(Binary::Mul, a, b);           // forward
//     return record("mul", out, {a, b}, [a = a.detach(), b = b.detach()](const Tensor& dout, const Needs& needs) {
//       Grads g(2);                                                  // backward, right below it
//       if (needs[0]) g[0] = mul(dout, b);   // forward: out = a * b, so da = dout * b
//       if (needs[1]) g[1] = mul(dout, a);   //                      and db = dout * a
//       return g;
//     });
//   }
//
// If grad mode is off or no input requires a gradient, record() returns `out` untouched and the lambda
// (with the tensors it saved) is dropped at once. Saved tensors must be captured detached (x.detach()):
// a saved tensor that kept its grad_fn could form a reference cycle through its own node.
#pragma once

#include <initializer_list>
#include <vector>

#include "autograd/grad_mode.h"
#include "autograd/node.h"

namespace hydra {

// True if grad mode is on and some input requires a gradient: the op will be recorded.
bool any_requires_grad(const std::vector<Tensor>& inputs);

Tensor record(const char* op, Tensor out, const std::vector<Tensor>& inputs, BackwardFn backward);

}  // namespace hydra
