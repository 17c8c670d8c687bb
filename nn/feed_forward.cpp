#include "nn/feed_forward.h"

#include <type_traits>

#include "autograd/ops.h"
#include "autograd/record.h"
#include "tensor/copy.h"
#include "tensor/dispatch.h"
#include "tensor/elementwise.h"
#include "tensor/parallel.h"
#include "tensor/vec_math.h"

namespace hydra::nn {

namespace {

// NOTE: silu(g) = g / (1 + e^-g) and sigmoid(g) = 1 / (1 + e^-g), the formulas of the silu and sigmoid
// primitives (and of PyTorch's CPU silu), with vexp: a vectorizable float32 exp within 2 ulp, libm's
// exp for float64 (tensor/vec_math.h). For g -> -inf, e^-g = inf and both are 0 (silu -0); no NaN for
// any finite g.

// out = silu(g) * u over n dense elements.
template <class T>
void swiglu_forward(const T* g, const T* u, T* out, int64_t n) {
  parallel_for(0, n, kGrainElementwise, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) out[i] = (g[i] / (T(1) + vexp(-g[i]))) * u[i];
  });
}

// The backward of swiglu_forward, both gradients in the same pass; dg or du may be null (not needed).
template <class T>
void swiglu_backward(const T* dout, const T* g, const T* u, T* dg, T* du, int64_t n) {
  parallel_for(0, n, kGrainElementwise, [&](int64_t lo, int64_t hi) {
    // One loop per case, so that each loop body is branch-free and vectorizes.
    auto run = [&](auto want_dg, auto want_du) {
      for (int64_t i = lo; i < hi; ++i) {
        const T one_plus_e = T(1) + vexp(-g[i]);
        const T s = T(1) / one_plus_e;  // sigmoid(g)
        // forward: out = silu(g) * u, so du = dout * silu(g)
        if constexpr (want_du) du[i] = dout[i] * (g[i] / one_plus_e);
        // forward: silu(g) = g * s, so d silu/dg = s + g * s * (1 - s) = s * (1 + g * (1 - s)),
        // and dg = dout * u * s * (1 + g * (1 - s))
        if constexpr (want_dg) dg[i] = (dout[i] * u[i]) * (s * (T(1) + g[i] * (T(1) - s)));
      }
    };
    if (dg && du)
      run(std::true_type{}, std::true_type{});
    else if (dg)
      run(std::true_type{}, std::false_type{});
    else if (du)
      run(std::false_type{}, std::true_type{});
  });
}

// What the backward reads: the forward's two dense inputs.
struct SwigluSaved {
  Tensor gate, up;  // detached
};

// The backward of swiglu on tensors: dgate and dup for the inputs that need them.
Grads swiglu_backward(const SwigluSaved& s, const Tensor& dout_in, const Needs& needs) {
  Tensor dout = kernels::contiguous_raw(dout_in);
  Grads g(2);
  if (needs[0]) g[0] = empty(s.gate.shape(), s.gate.dtype());
  if (needs[1]) g[1] = empty(s.up.shape(), s.up.dtype());
  dispatch_float(s.gate.dtype(), "swiglu backward", [&](auto tag) {
    using T = decltype(tag);
    swiglu_backward<T>(dout.data<T>(), s.gate.data<T>(), s.up.data<T>(), needs[0] ? g[0].data<T>() : nullptr,
                       needs[1] ? g[1].data<T>() : nullptr, s.gate.numel());
  });
  return g;
}

}  // namespace

Tensor swiglu(const Tensor& gate_in, const Tensor& up_in) {
  kernels::check_same_shape("swiglu", gate_in, up_in);
  SwigluSaved s{kernels::contiguous_raw(gate_in).detach(), kernels::contiguous_raw(up_in).detach()};
  Tensor out = empty(s.gate.shape(), s.gate.dtype());
  dispatch_float(s.gate.dtype(), "swiglu", [&](auto tag) {
    using T = decltype(tag);
    swiglu_forward<T>(s.gate.data<T>(), s.up.data<T>(), out.data<T>(), s.gate.numel());
  });
  return record("swiglu", out, {gate_in, up_in},
                [s](const Tensor& dout, const Needs& needs) { return swiglu_backward(s, dout, needs); });
}

Tensor swiglu_reference(const Tensor& gate, const Tensor& up) {
  kernels::check_same_shape("swiglu_reference", gate, up);
  return mul(silu(gate), up);
}

FeedForward::FeedForward(int64_t d_model_, int64_t hidden_size_)
    : d_model(d_model_), hidden_size(hidden_size_), w1(d_model_, hidden_size_), w2(hidden_size_, d_model_),
      w3(d_model_, hidden_size_) {
  register_module("w1", w1);
  register_module("w2", w2);
  register_module("w3", w3);
}

Tensor FeedForward::forward(const Tensor& x) const {
  // shape: x (..., C) -> gate, up (..., F) -> out (..., C)
  std::vector<Tensor> gate_up = forward_shared_input({&w1, &w3}, x);
  return w2.forward(swiglu(gate_up[0], gate_up[1]));
}

}  // namespace hydra::nn
