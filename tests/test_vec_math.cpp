// tensor/vec_math.h: vexp(float) against exp computed in double, on a dense sweep of every float bit
// pattern (which covers [-104, 89] densely, and the NaNs and huge values beyond); the exact edges
// (overflow, underflow, inf, NaN); vexp(double) = std::exp; and the float32 kernels built on vexp
// (exp, sigmoid, silu) giving the same bits as a plain vexp call whatever the thread count, so the
// vectorized loop, its remainder and the scalar code agree.
#include <doctest/doctest.h>

#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "autograd/ops.h"
#include "tensor/parallel.h"
#include "tensor/vec_math.h"

using namespace hydra;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// The spacing of floats around |v| (v a float-range double): 2^(e - 23) in the binade [2^e, 2^(e+1)),
// and the subnormal spacing 2^-149 below FLT_MIN.
double float_ulp(double v) {
  v = std::fabs(v);
  if (v < FLT_MIN) return std::ldexp(1.0, -149);
  int e = 0;
  std::frexp(v, &e);  // v in [2^(e-1), 2^e)
  return std::ldexp(1.0, e - 1 - 23);
}

// A call the compiler cannot inline into a loop: the plain scalar code path.
float (*volatile vexp_scalar)(float) = [](float x) { return vexp(x); };

struct Sweep {
  double max_ulp = 0;
  float worst_x = 0;
  int64_t checked = 0, edge_failures = 0, nan_failures = 0, scalar_mismatches = 0;
};

// Checks vexp on the floats with bit patterns first, first + step, ... (all of them, every `step`-th).
// Results that round to a finite nonzero float are measured in ulps of the double reference; results
// that round to +inf or 0 must be exactly that; NaN must give NaN.
Sweep sweep_bit_patterns(uint64_t step) {
  Sweep s;
  constexpr size_t kBatch = 1 << 16;
  std::vector<float> x(kBatch), y(kBatch);
  for (uint64_t base = 0; base < (uint64_t{1} << 32); base += kBatch * step) {
    size_t len = 0;
    for (uint64_t b = base; b < (uint64_t{1} << 32) && len < kBatch; b += step)
      x[len++] = std::bit_cast<float>(static_cast<uint32_t>(b));
    for (size_t i = 0; i < len; ++i) y[i] = vexp(x[i]);  // the vectorized loop
    for (size_t i = 0; i < len; ++i) {
      ++s.checked;
      if (std::bit_cast<uint32_t>(y[i]) != std::bit_cast<uint32_t>(vexp_scalar(x[i]))) ++s.scalar_mismatches;
      if (std::isnan(x[i])) {
        s.nan_failures += !std::isnan(y[i]);
        continue;
      }
      const double want = std::exp(static_cast<double>(x[i]));
      const float rounded = static_cast<float>(want);  // the correctly rounded float result
      if (std::isinf(rounded) || rounded == 0.0f) {
        s.edge_failures += y[i] != rounded;
        continue;
      }
      const double ulps = std::fabs(static_cast<double>(y[i]) - want) / float_ulp(want);
      if (!(ulps <= s.max_ulp)) {  // also catches a NaN result
        s.max_ulp = std::isnan(ulps) ? INFINITY : ulps;
        s.worst_x = x[i];
      }
    }
  }
  return s;
}

}  // namespace

TEST_CASE("vexp(float) is within 2 ulp of exp in double over every 97th float, and exact at the edges") {
  // 2^32 / 97 = 44M floats: [-104, 89] holds half of all bit patterns, so about 23M of them lie there.
  Sweep s = sweep_bit_patterns(97);
  MESSAGE("vexp: " << s.checked << " floats, max error " << s.max_ulp << " ulp at x = " << s.worst_x);
  CHECK(s.checked > 44000000);
  CHECK(s.max_ulp <= 2.0);
  CHECK(s.edge_failures == 0);
  CHECK(s.nan_failures == 0);
  CHECK(s.scalar_mismatches == 0);
}

TEST_CASE("vexp(float) special values and the overflow / underflow thresholds") {
  CHECK(vexp(0.0f) == 1.0f);
  CHECK(vexp(-0.0f) == 1.0f);
  CHECK(vexp(FLT_TRUE_MIN) == 1.0f);  // subnormal inputs
  CHECK(vexp(-FLT_TRUE_MIN) == 1.0f);
  CHECK(vexp(kInf) == kInf);
  CHECK(vexp(-kInf) == 0.0f);
  CHECK(!std::signbit(vexp(-kInf)));
  CHECK(std::isnan(vexp(std::numeric_limits<float>::quiet_NaN())));
  CHECK(std::isnan(vexp(-std::numeric_limits<float>::quiet_NaN())));
  CHECK(vexp(FLT_MAX) == kInf);
  CHECK(vexp(-FLT_MAX) == 0.0f);
  CHECK(vexp(1e30f) == kInf);
  CHECK(vexp(-1e30f) == 0.0f);
  CHECK(vexp(89.0f) == kInf);
  CHECK(vexp(-104.0f) == 0.0f);

  // The thresholds are where exp in double, rounded to float, stops being finite / nonzero.
  const float above_max = std::nextafter(kExpMaxFinite, kInf);
  const float below_min = std::nextafter(kExpMinNonzero, -kInf);
  CHECK(std::isfinite(static_cast<float>(std::exp(static_cast<double>(kExpMaxFinite)))));
  CHECK(std::isinf(static_cast<float>(std::exp(static_cast<double>(above_max)))));
  CHECK(static_cast<float>(std::exp(static_cast<double>(kExpMinNonzero))) == FLT_TRUE_MIN);
  CHECK(static_cast<float>(std::exp(static_cast<double>(below_min))) == 0.0f);
  // and vexp follows them exactly.
  CHECK(std::isfinite(vexp(kExpMaxFinite)));
  CHECK(vexp(kExpMaxFinite) > 3.4e38f);
  CHECK(vexp(above_max) == kInf);
  CHECK(vexp(kExpMinNonzero) == FLT_TRUE_MIN);
  CHECK(vexp(below_min) == 0.0f);
  CHECK(vexp(88.72283935546875f) == kInf);  // 0x42B17218, the "88.7228..." of the contract

  // A few ordinary values, to within an ulp.
  for (float v : {1.0f, -1.0f, 0.5f, 10.0f, -10.0f, 80.0f, -80.0f, -95.0f}) {
    const double want = std::exp(static_cast<double>(v));
    CHECK_MESSAGE(std::fabs(vexp(v) - want) <= float_ulp(want), "x = " << v);
  }
}

TEST_CASE("vexp(double) is std::exp, bit for bit") {
  for (double v : {0.0, 1.0, -1.0, 0.1, 1e-300, 700.0, -700.0, 709.7, -745.0, 3.14159})
    CHECK(std::bit_cast<uint64_t>(vexp(v)) == std::bit_cast<uint64_t>(std::exp(v)));
  CHECK(std::isnan(vexp(std::numeric_limits<double>::quiet_NaN())));
}

TEST_CASE("float32 exp, sigmoid and silu give vexp's bits for every element and any thread count") {
  // An odd size above the parallel grain, so the work is split (at thread-dependent places) and every
  // split leaves vector remainders; values span the whole range, edges included.
  const int64_t n = 3 * kGrainElementwise + 13;
  std::vector<float> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) values[i] = -120.0f + 220.0f * static_cast<float>(i) / static_cast<float>(n);
  values[0] = kInf;
  values[1] = -kInf;
  values[2] = std::numeric_limits<float>::quiet_NaN();
  values[3] = kExpMaxFinite;
  values[4] = kExpMinNonzero;
  Tensor x = from_vector(values, {n});

  const int restore = num_threads();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    const std::vector<float> e = hydra::exp(x).to_vector<float>();
    const std::vector<float> s = sigmoid(x).to_vector<float>();
    const std::vector<float> u = silu(x).to_vector<float>();
    int64_t mismatches = 0;
    for (int64_t i = 0; i < n; ++i) {
      const float v = values[i];
      const float want_e = vexp_scalar(v);
      const float want_s = 1.0f / (1.0f + vexp_scalar(-v));
      const float want_u = v / (1.0f + vexp_scalar(-v));
      mismatches += std::memcmp(&e[i], &want_e, 4) != 0;
      mismatches += std::memcmp(&s[i], &want_s, 4) != 0;
      mismatches += std::memcmp(&u[i], &want_u, 4) != 0;
    }
    CHECK_MESSAGE(mismatches == 0, threads << " threads");
  }
  set_num_threads(restore);
}
