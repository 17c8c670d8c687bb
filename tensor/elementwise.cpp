#include "tensor/elementwise.h"

#include <cmath>

#include "tensor/copy.h"
#include "tensor/dispatch.h"
#include "tensor/parallel.h"
#include "tensor/vec_math.h"

namespace hydra::kernels {

namespace {

// y[i] = f(x[i]) over a dense copy of x.
template <class T, class F>
Tensor map1(const Tensor& x_any, F f) {
  Tensor x = contiguous_raw(x_any);
  Tensor y = empty(x.shape(), x.dtype());
  const T* px = x.data<T>();
  T* py = y.data<T>();
  parallel_for(0, x.numel(), kGrainElementwise, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) py[i] = f(px[i]);
  });
  return y;
}

template <class T, class F>
Tensor map2(const Tensor& a_any, const Tensor& b_any, F f) {
  Tensor a = contiguous_raw(a_any), b = contiguous_raw(b_any);
  Tensor y = empty(a.shape(), a.dtype());
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* py = y.data<T>();
  parallel_for(0, a.numel(), kGrainElementwise, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) py[i] = f(pa[i], pb[i]);
  });
  return y;
}

}  // namespace

const char* unary_name(Unary op) {
  switch (op) {
    case Unary::Neg: return "neg";
    case Unary::Exp: return "exp";
    case Unary::Log: return "log";
    case Unary::Sqrt: return "sqrt";
    case Unary::Rsqrt: return "rsqrt";
    case Unary::Sigmoid: return "sigmoid";
    case Unary::Silu: return "silu";
  }
  return "?";
}

const char* binary_name(Binary op) {
  switch (op) {
    case Binary::Add: return "add";
    case Binary::Sub: return "sub";
    case Binary::Mul: return "mul";
    case Binary::Div: return "div";
  }
  return "?";
}

void check_same_shape(const char* op, const Tensor& a, const Tensor& b) {
  HYDRA_CHECK(a.shape() == b.shape(), op, ": shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
              " differ (elementwise ops need equal shapes; broadcast explicitly with broadcast_to)");
  HYDRA_CHECK(a.dtype() == b.dtype(), op, ": dtypes ", dtype_name(a.dtype()), " and ", dtype_name(b.dtype()),
              " differ");
}

Tensor unary_raw(Unary op, const Tensor& x) {
  return dispatch_float(x.dtype(), unary_name(op), [&](auto tag) {
    using T = decltype(tag);
    switch (op) {
      case Unary::Neg: return map1<T>(x, [](T v) { return -v; });
      // NOTE: vexp is std::exp for float64 and a vectorizable exp within 2 ulp for float32
      // (tensor/vec_math.h): libm's float exp is a call per element that no loop can vectorize.
      case Unary::Exp: return map1<T>(x, [](T v) { return vexp(v); });
      case Unary::Log: return map1<T>(x, [](T v) { return std::log(v); });
      case Unary::Sqrt: return map1<T>(x, [](T v) { return std::sqrt(v); });
      case Unary::Rsqrt: return map1<T>(x, [](T v) { return T(1) / std::sqrt(v); });
      case Unary::Sigmoid: return map1<T>(x, [](T v) { return T(1) / (T(1) + vexp(-v)); });
      case Unary::Silu: return map1<T>(x, [](T v) { return v / (T(1) + vexp(-v)); });
    }
    throw InternalError("unknown unary op");
  });
}

Tensor binary_raw(Binary op, const Tensor& a, const Tensor& b) {
  check_same_shape(binary_name(op), a, b);
  return dispatch_float(a.dtype(), binary_name(op), [&](auto tag) {
    using T = decltype(tag);
    switch (op) {
      case Binary::Add: return map2<T>(a, b, [](T x, T y) { return x + y; });
      case Binary::Sub: return map2<T>(a, b, [](T x, T y) { return x - y; });
      case Binary::Mul: return map2<T>(a, b, [](T x, T y) { return x * y; });
      case Binary::Div: return map2<T>(a, b, [](T x, T y) { return x / y; });
    }
    throw InternalError("unknown binary op");
  });
}

Tensor pow_scalar_raw(const Tensor& x, double exponent) {
  return dispatch_float(x.dtype(), "pow", [&](auto tag) {
    using T = decltype(tag);
    const T e = static_cast<T>(exponent);
    // NOTE: squares are common (RMSNorm, losses); x*x is exact where pow() may differ by an ulp.
    if (exponent == 2.0) return map1<T>(x, [](T v) { return v * v; });
    return map1<T>(x, [e](T v) { return std::pow(v, e); });
  });
}

Tensor mul_scalar_raw(const Tensor& x, double s) {
  return dispatch_float(x.dtype(), "mul_scalar", [&](auto tag) {
    using T = decltype(tag);
    const T c = static_cast<T>(s);
    return map1<T>(x, [c](T v) { return v * c; });
  });
}

Tensor add_scalar_raw(const Tensor& x, double s) {
  return dispatch_float(x.dtype(), "add_scalar", [&](auto tag) {
    using T = decltype(tag);
    const T c = static_cast<T>(s);
    return map1<T>(x, [c](T v) { return v + c; });
  });
}

void add_into(const Tensor& dst, const Tensor& src_any) {
  check_same_shape("add_into", dst, src_any);
  HYDRA_ASSERT(dst.is_contiguous(), "add_into needs a dense destination");
  Tensor src = contiguous_raw(src_any);
  dispatch_float(dst.dtype(), "add_into", [&](auto tag) {
    using T = decltype(tag);
    T* pd = dst.data<T>();
    const T* ps = src.data<T>();
    parallel_for(0, dst.numel(), kGrainElementwise, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) pd[i] += ps[i];
    });
  });
}

}  // namespace hydra::kernels
