// tensor/vec_math.h: vexp(float) against exp computed in double, on a dense sweep of every float bit
// pattern (which covers [-104, 89] densely, and the NaNs and huge values beyond); the exact edges
// (overflow, underflow, inf, NaN); vexp(double) = std::exp. Then the float32 kernels built on vexp:
// exp, sigmoid and silu give the same bits as a plain vexp call whatever the thread count (so the
// vectorized loop, its remainder and the scalar code agree); softmax, log_softmax and cross_entropy
// on rows long enough to run their vector loops and block boundaries stay within 2e-6 of float64;
// masked (-inf) logits give exact zeros.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "autograd/ops.h"
#include "nn/cross_entropy.h"
#include "support/threads.h"
#include "tensor/parallel.h"
#include "tensor/vec_math.h"

using namespace hydra;
using hydra::test::ScopedThreads;

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

  for (int threads : {1, 2}) {
    ScopedThreads scoped(threads);
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
}

namespace {

// max over elements of |got - want| / max(1, |want|), the op harness's float32 measure; got is float32,
// want float64.
double max_rel_diff(const Tensor& got, const Tensor& want) {
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  REQUIRE(g.size() == w.size());
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    const double d = std::fabs(g[i] - w[i]) / std::max(1.0, std::fabs(w[i]));
    if (!(d <= worst)) worst = std::isnan(d) ? INFINITY : d;
  }
  return worst;
}

// The float32 run of f and the float64 run on the same (float32-representable) values: the forward
// output and the gradient of x for upstream dy.
struct Runs {
  Tensor y32, y64, dx32, dx64;
};

Runs run_both(const Tensor& x64, const Tensor& dy64, const std::function<Tensor(const Tensor&)>& f) {
  Runs r;
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor x = cast(cast(x64, DType::Float32), dt).detach().set_requires_grad();
    Tensor y = f(x);
    y.backward(cast(dy64, dt));
    (dt == DType::Float32 ? r.y32 : r.y64) = y.detach();
    (dt == DType::Float32 ? r.dx32 : r.dx64) = x.grad();
  }
  return r;
}

}  // namespace

TEST_CASE("float32 softmax, log_softmax and cross_entropy stay within 2e-6 of float64 on long rows") {
  // Row lengths around the kernels' block sizes (8 sum lanes, 64-wide max blocks, 512-wide exp blocks),
  // along the last dim (dense rows) and dim 0 (strided rows, gathered 16 at a time: 37 rows make two
  // full tiles and a partial one); scale 30 puts some x - max past -87, where exp is subnormal or 0.
  double worst = 0;  // over every check below, reported for the margin
  auto check = [&](double d) {
    CHECK(d <= 2e-6);
    worst = std::max(worst, d);
  };
  for (int64_t n : {1, 7, 8, 9, 63, 64, 65, 511, 512, 513, 1000, 4099})
    for (double scale : {1.0, 30.0}) {
      CAPTURE(n);
      CAPTURE(scale);
      Generator gen(static_cast<uint64_t>(n));
      const Tensor x = gen.normal({37, n}, 0, scale, DType::Float64);
      const Tensor dy = gen.normal({37, n}, 0, 1, DType::Float64);
      for (int64_t dim : {-1, 0}) {
        CAPTURE(dim);
        const Tensor xd = dim == 0 ? transpose(x, 0, 1) : x, dyd = dim == 0 ? transpose(dy, 0, 1) : dy;
        for (bool log : {false, true}) {
          CAPTURE(log);
          Runs r = run_both(xd, dyd, [&](const Tensor& v) { return log ? log_softmax(v, dim) : softmax(v, dim); });
          check(max_rel_diff(r.y32, r.y64));
          check(max_rel_diff(r.dx32, r.dx64));
        }
      }
      const Tensor targets = gen.randint({37}, 0, n);
      Runs r = run_both(x, ones({}, DType::Float64), [&](const Tensor& v) { return cross_entropy(v, targets); });
      check(max_rel_diff(r.y32, r.y64));
      check(max_rel_diff(r.dx32, r.dx64));
    }
  // The largest (1.4e-6, log_softmax backward at scale 30, n = 512) is float32's own: the rounding of
  // y, times Σ dy in dx = dy - e^y Σ dy. It is the same with libm's exp.
  MESSAGE("largest float32 vs float64 difference: " << worst);
}

TEST_CASE("float32 softmax of masked (-inf) logits: exact zeros, and log_softmax -inf") {
  const int64_t n = 1001;
  std::vector<float> v(static_cast<size_t>(2 * n));
  for (size_t i = 0; i < v.size(); ++i) v[i] = i % 3 == 1 ? -kInf : static_cast<float>(i % 17) * 0.25f;
  const Tensor x = from_vector(v, {2, n});
  const std::vector<float> p = softmax(x, -1).to_vector<float>(), lp = log_softmax(x, -1).to_vector<float>();
  const std::vector<double> want = softmax(cast(x, DType::Float64), -1).to_vector<double>();
  double worst = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i % 3 == 1) {
      CHECK(p[i] == 0.0f);
      CHECK(lp[i] == -kInf);
    } else {
      worst = std::max(worst, std::fabs(p[i] - want[i]));
    }
  }
  CHECK(worst <= 2e-6);
}
