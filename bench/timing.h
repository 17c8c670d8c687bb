// Timing helpers shared by the benchmarks: a monotonic clock and the median (the machines are shared and
// noisy, so every figure is a median of repetitions).
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace hydra::bench {

inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace hydra::bench
