// The compiler itself: code patterns that a compiler got wrong on this project's machines, kept as
// tests so a toolchain or flag change that brings the bug back fails here, not somewhere subtle.
#include <doctest/doctest.h>

#include <cstddef>
#include <numeric>
#include <vector>

namespace {

// Out of line on purpose: the bug needs the vectors to be built at the call site.
[[gnu::noinline]] double weighted(const std::vector<double>& values, const std::vector<double>& weights) {
  double s = 0;
  for (std::size_t i = 0; i < values.size(); ++i) s += values[i] * weights[i];
  return s;
}

}  // namespace

TEST_CASE("constant initializer lists keep their values inside an assertion") {
  // GCC 12 with -march=native on an AVX-512 CPU built {1, 1, 0, 0} here as {1, 1, 1, 1} (its SLP
  // vectorizer stored one broadcast register); CMakeLists.txt turns that vectorizer off for GCC < 13.
  CHECK(weighted({0.9, 0.8, 0.3, 0.1}, {1, 1, 0, 0}) == doctest::Approx(1.7));
  CHECK(weighted({0.5, 0.25, 0.125, 2.0}, {0, 1, 0, 1}) == doctest::Approx(2.25));
  const std::vector<double> w = {1, 1, 0, 0};
  CHECK(std::accumulate(w.begin(), w.end(), 0.0) == 2.0);
}
