#include "tensor/random.h"

#include <cmath>
#include <numbers>

#include "tensor/dispatch.h"
#include "tensor/parallel.h"

namespace hydra {

namespace {

// Uniform double in [0, 1) from the top 53 bits.
double to_unit(uint64_t b) { return static_cast<double>(b >> 11) * 0x1.0p-53; }

// One standard normal from two uniforms (Box-Muller); 1 - u keeps the log's argument in (0, 1].
double box_muller(uint64_t b1, uint64_t b2) {
  double u1 = 1.0 - to_unit(b1);
  double u2 = to_unit(b2);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

// Fills a new tensor with value(i) for element i in parallel, then advances the generator.
template <class F>
Tensor fill(Generator& gen, const Shape& shape, DType dtype, const char* op, F value) {
  Tensor t = empty(shape, dtype);
  dispatch_all(dtype, op, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    parallel_for(0, t.numel(), 4096, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) p[i] = static_cast<T>(value(static_cast<uint64_t>(i)));
    });
  });
  gen.set_state(gen.seed(), gen.offset() + static_cast<uint64_t>(t.numel()));
  return t;
}

}  // namespace

Generator::Generator(uint64_t seed) { set_state(seed, 0); }

void Generator::set_state(uint64_t seed, uint64_t offset) {
  seed_ = seed;
  key_ = mix64(seed ^ 0x6A09E667F3BCC909ULL);
  offset_ = offset;
}

Tensor Generator::uniform(const Shape& shape, double low, double high, DType dtype) {
  HYDRA_CHECK(is_floating(dtype), "uniform: dtype must be float32 or float64, got ", dtype_name(dtype));
  HYDRA_CHECK(low < high, "uniform: need low < high, got [", low, ", ", high, ")");
  return fill(*this, shape, dtype, "uniform", [&](uint64_t i) {
    double v = low + (high - low) * to_unit(bits(i, 0));
    // NOTE: rounding to float32 can land exactly on `high`; keep the interval half-open.
    if (dtype == DType::Float32 && static_cast<float>(v) >= static_cast<float>(high))
      v = std::nextafter(static_cast<float>(high), static_cast<float>(low));
    return v;
  });
}

Tensor Generator::normal(const Shape& shape, double mean, double std, DType dtype) {
  HYDRA_CHECK(is_floating(dtype), "normal: dtype must be float32 or float64, got ", dtype_name(dtype));
  HYDRA_CHECK(std >= 0, "normal: std must be >= 0, got ", std);
  return fill(*this, shape, dtype, "normal",
              [&](uint64_t i) { return mean + std * box_muller(bits(i, 0), bits(i, 1)); });
}

Tensor Generator::trunc_normal(const Shape& shape, double mean, double std, double a, double b, DType dtype) {
  HYDRA_CHECK(is_floating(dtype), "trunc_normal: dtype must be float32 or float64, got ", dtype_name(dtype));
  HYDRA_CHECK(std > 0 && a < b, "trunc_normal: need std > 0 and a < b, got std=", std, " a=", a, " b=", b);
  // Rejection needs the interval to hold a reasonable share of the mass; refuse hopeless requests
  // instead of looping for ever.
  double lo = (a - mean) / std, hi = (b - mean) / std;
  double mass = 0.5 * (std::erf(hi / std::numbers::sqrt2) - std::erf(lo / std::numbers::sqrt2));
  HYDRA_CHECK(mass > 1e-3, "trunc_normal: [", a, ", ", b, "] holds only ", mass,
              " of the normal's mass; rejection sampling would not finish");
  return fill(*this, shape, dtype, "trunc_normal", [&](uint64_t i) {
    for (uint64_t attempt = 0;; ++attempt) {
      double z = box_muller(bits(i, 2 * attempt), bits(i, 2 * attempt + 1));
      double v = mean + std * z;
      if (v >= a && v <= b) return v;
    }
  });
}

Tensor Generator::randint(const Shape& shape, int64_t low, int64_t high, DType dtype) {
  HYDRA_CHECK(low < high, "randint: need low < high, got [", low, ", ", high, ")");
  const uint64_t range = static_cast<uint64_t>(high - low);
  // NOTE: modulo bias is below 2^-40 for any range under 2^24 (vocabularies); not worth rejection.
  return fill(*this, shape, dtype, "randint",
              [&](uint64_t i) { return static_cast<double>(low + static_cast<int64_t>(bits(i, 0) % range)); });
}

}  // namespace hydra
