// The machine's own limits, measured in the same run as the model benchmark so each rate can be read
// against them (bench/model_vs_torch.py prints the fractions):
//
//   sgemm:  every thread runs its own single-threaded cblas_sgemm at once, at a transformer's shape
//           (M × K · K × N, default the `small` preset's w1 product: 2048 × 512 · 512 × 2048). Their
//           summed GFLOP/s is what the cores reach on GEMM when all are busy, the practical ceiling of a
//           training step (whose time is mostly such products).
//   triad:  a[i] = b[i] + s·c[i] over three 128 MB arrays split across the threads (STREAM's triad);
//           GB/s counts 12 bytes per element.
//   read:   the sum of one 256 MB array, split across the threads; 4 bytes per element. Decoding one
//           token reads every weight once and writes almost nothing, so this is its bandwidth ceiling.
//
// Medians of --reps. Prints one machine-readable line:
//   ROOFLINE threads=2 sgemm_gflops=... triad_gbs=... read_gbs=...
//
// Usage: bench_roofline [--threads N] [--reps R] [--m M --k K --n N]
#include <cblas.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench/timing.h"

namespace {

// Runs body(t) on `threads` threads at once and returns the wall time of the slowest.
template <typename Body>
double run_on_threads(int threads, Body body) {
  std::vector<std::thread> pool;
  const double t0 = hydra::bench::now_seconds();
  for (int t = 0; t < threads; ++t) pool.emplace_back(body, t);
  for (auto& th : pool) th.join();
  return hydra::bench::now_seconds() - t0;
}

double sgemm_gflops(int threads, int reps, int64_t M, int64_t K, int64_t N) {
  std::vector<std::vector<float>> a(threads), b(threads), c(threads);
  for (int t = 0; t < threads; ++t) {
    a[t].assign(static_cast<size_t>(M * K), 0.5f);
    b[t].assign(static_cast<size_t>(K * N), 0.25f);
    c[t].assign(static_cast<size_t>(M * N), 0.0f);
  }
  auto one = [&](int t) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(M), static_cast<blasint>(N),
                static_cast<blasint>(K), 1.0f, a[t].data(), static_cast<blasint>(K), b[t].data(),
                static_cast<blasint>(N), 0.0f, c[t].data(), static_cast<blasint>(N));
  };
  run_on_threads(threads, one);  // warm-up: OpenBLAS's buffers, first-touch of C
  std::vector<double> rates;
  for (int r = 0; r < reps; ++r) {
    const double s = run_on_threads(threads, one);
    rates.push_back(2.0 * static_cast<double>(M * K * N) * threads / s / 1e9);
  }
  return hydra::bench::median(rates);
}

struct Bandwidth {
  double triad, read;
};

Bandwidth memory_gbs(int threads, int reps) {
  const size_t n = size_t{32} << 20;  // 32 Mi floats: 128 MB per array, far past any cache
  std::vector<float> a(n), b(n, 1.0f), c(n, 2.0f), big(2 * n, 1.0f);
  std::vector<double> sums(static_cast<size_t>(threads));
  auto slice = [&](size_t len, int t) {
    return std::pair<size_t, size_t>{len * static_cast<size_t>(t) / static_cast<size_t>(threads),
                                     len * static_cast<size_t>(t + 1) / static_cast<size_t>(threads)};
  };
  auto triad = [&](int t) {
    const auto [lo, hi] = slice(n, t);
    for (size_t i = lo; i < hi; ++i) a[i] = b[i] + 3.0f * c[i];
  };
  auto read = [&](int t) {
    const auto [lo, hi] = slice(2 * n, t);
    // Four vector accumulators (GCC's vector extension: 8 floats each) keep several loads in flight, so
    // the loop is bound by memory, not by the latency of one chain of adds.
    using v8 = float __attribute__((vector_size(32)));
    v8 acc[4] = {};
    size_t i = lo;
    for (; i + 32 <= hi; i += 32)
      for (int j = 0; j < 4; ++j) {
        v8 x;
        std::memcpy(&x, &big[i + 8 * static_cast<size_t>(j)], sizeof x);
        acc[j] += x;
      }
    float s[8] = {};
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 8; ++l) s[l] += acc[j][l];
    for (; i < hi; ++i) s[0] += big[i];
    sums[static_cast<size_t>(t)] = s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
  };
  run_on_threads(threads, triad);
  run_on_threads(threads, read);
  std::vector<double> triads, reads;
  for (int r = 0; r < reps; ++r) {
    triads.push_back(12.0 * static_cast<double>(n) / run_on_threads(threads, triad) / 1e9);
    reads.push_back(4.0 * static_cast<double>(2 * n) / run_on_threads(threads, read) / 1e9);
  }
  if (sums[0] < 0) std::printf("impossible\n");
  return {hydra::bench::median(triads), hydra::bench::median(reads)};
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, reps = 5;
  int64_t M = 2048, K = 512, N = 2048;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const long long v = std::atoll(argv[i + 1]);
    if (flag == "--threads") threads = static_cast<int>(v);
    else if (flag == "--reps") reps = static_cast<int>(v);
    else if (flag == "--m") M = v;
    else if (flag == "--k") K = v;
    else if (flag == "--n") N = v;
    else {
      std::fprintf(stderr, "bench_roofline: unknown flag %s\nusage: bench_roofline [--threads N] [--reps R] "
                           "[--m M --k K --n N]\n", flag.c_str());
      return 2;
    }
  }
  if (threads < 1 || reps < 1 || M < 1 || K < 1 || N < 1) {
    std::fprintf(stderr, "bench_roofline: --threads, --reps, --m, --k, --n must be >= 1\n");
    return 2;
  }
  openblas_set_num_threads(1);  // one BLAS thread per caller, as Hydra runs it
  const double gflops = sgemm_gflops(threads, reps, M, K, N);
  const Bandwidth bw = memory_gbs(threads, reps);
  std::printf("ROOFLINE threads=%d sgemm_shape=%lldx%lldx%lld sgemm_gflops=%.1f triad_gbs=%.2f read_gbs=%.2f\n", threads,
              static_cast<long long>(M), static_cast<long long>(K), static_cast<long long>(N), gflops, bw.triad, bw.read);
  return 0;
}
