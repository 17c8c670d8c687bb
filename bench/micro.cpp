// Micro-benchmarks of the tensor kernels, each printed next to a baseline measured in the same run:
//   matmul at transformer shapes vs raw OpenBLAS (one cblas_sgemm call on the same buffers, with
//     OpenBLAS's own threads set to the same thread count) — Hydra's matmul must reach >= 95%;
//   elementwise / row-wise kernels in GB/s vs a plain parallel copy of the same number of bytes.
// Times are medians of interleaved repetitions (the machines are shared and noisy).
//
// Usage: bench_micro [--threads N] [--reps R] [--quick]
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "bench/timing.h"
#include "nn/cross_entropy.h"
#include "tensor/parallel.h"

using namespace hydra;

using bench::median;
using bench::now_seconds;

namespace {

struct MatmulShape {
  const char* what;
  int64_t M, N, K;
  bool trans_a, trans_b;
};

// Times raw OpenBLAS and Hydra alternately on the same data; returns {raw_s, hydra_s} medians.
std::pair<double, double> time_matmul(const MatmulShape& s, int threads, int reps) {
  Generator gen(1);
  // Stored operands: A is M×K (or K×M when transposed), B is K×N (or N×K).
  Tensor a = gen.normal(s.trans_a ? Shape{s.K, s.M} : Shape{s.M, s.K});
  Tensor b = gen.normal(s.trans_b ? Shape{s.N, s.K} : Shape{s.K, s.N});
  Tensor a_op = s.trans_a ? transpose(a, 0, 1) : a;
  Tensor b_op = s.trans_b ? transpose(b, 0, 1) : b;
  std::vector<float> c(static_cast<size_t>(s.M * s.N));
  auto raw = [&] {
    openblas_set_num_threads(threads);
    cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans, s.trans_b ? CblasTrans : CblasNoTrans,
                static_cast<blasint>(s.M), static_cast<blasint>(s.N), static_cast<blasint>(s.K), 1.0f, a.data<float>(),
                static_cast<blasint>(a.size(1)), b.data<float>(), static_cast<blasint>(b.size(1)), 0.0f, c.data(),
                static_cast<blasint>(s.N));
    openblas_set_num_threads(1);
  };
  auto ours = [&] { Tensor out = matmul(a_op, b_op); };
  raw();
  ours();
  std::vector<double> t_raw, t_ours;
  for (int r = 0; r < reps; ++r) {
    double t0 = now_seconds();
    raw();
    double t1 = now_seconds();
    ours();
    double t2 = now_seconds();
    t_raw.push_back(t1 - t0);
    t_ours.push_back(t2 - t1);
  }
  return {median(t_raw), median(t_ours)};
}

// Median seconds of f over reps runs (after one warm-up).
double time_it(const std::function<void()>& f, int reps) {
  f();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    double t0 = now_seconds();
    f();
    t.push_back(now_seconds() - t0);
  }
  return median(t);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = default_num_threads(), reps = 15;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--threads" && i + 1 < argc) threads = std::stoi(argv[++i]);
    else if (arg == "--reps" && i + 1 < argc) reps = std::stoi(argv[++i]);
    else if (arg == "--quick") quick = true;
    else {
      std::fprintf(stderr, "usage: bench_micro [--threads N] [--reps R] [--quick]\n");
      return 2;
    }
  }
  if (quick) reps = 3;
  set_num_threads(threads);
  std::printf("Hydra micro-benchmarks: %d threads, median of %d interleaved reps\n%s\n\n", threads, reps,
              blas_description().c_str());

  const std::vector<MatmulShape> shapes = {
      {"x @ W      2048x512 * 512x2048", 2048, 2048, 512, false, false},
      {"x @ W      2048x2048 * 2048x512", 2048, 512, 2048, false, false},
      {"x @ W^T    2048x512 * (2048x512)^T", 2048, 2048, 512, false, true},
      {"x @ W^T    2048x2048 * (512x2048)^T", 2048, 512, 2048, false, true},
      {"dY^T @ X   (2048x2048)^T * 2048x512", 2048, 512, 2048, true, false},
      {"dY^T @ X   (2048x512)^T * 2048x2048", 512, 2048, 2048, true, false},
      {"small      64x256 * 256x256", 64, 256, 256, false, false},
  };
  std::printf("%-40s %12s %12s %8s\n", "matmul (float32)", "OpenBLAS", "Hydra", "ratio");
  double worst_ratio = 1e9;
  for (const MatmulShape& s : shapes) {
    auto [raw, ours] = time_matmul(s, threads, reps);
    double flops = 2.0 * s.M * s.N * s.K;
    double ratio = raw / ours;
    if (s.M * s.N * s.K >= 512LL * 2048 * 2048) worst_ratio = std::min(worst_ratio, ratio);
    std::printf("%-40s %8.1f GF/s %8.1f GF/s %7.3f\n", s.what, flops / raw / 1e9, flops / ours / 1e9, ratio);
  }
  std::printf("lowest Hydra/OpenBLAS ratio on the transformer shapes: %.3f (target >= 0.95)\n\n", worst_ratio);

  // Elementwise and row-wise kernels: bytes moved per call / time, next to a parallel copy of as many bytes.
  const int64_t n = quick ? (1 << 22) : (1 << 24);
  Generator gen(2);
  Tensor x = gen.normal({n}), y = gen.normal({n});
  Tensor rows = gen.normal({2048, 4096});
  Tensor sq = gen.normal({4096, 4096});
  Tensor labels = gen.randint({2048}, 0, 4096);
  auto copy_bw = [&](int64_t bytes) {
    std::vector<char> src(bytes, 1), dst(bytes);
    return bytes / time_it([&] {
      parallel_for(0, bytes, 1 << 20, [&](int64_t lo, int64_t hi) { std::memcpy(dst.data() + lo, src.data() + lo, hi - lo); });
    }, reps);
  };
  struct Kernel {
    const char* what;
    int64_t bytes;  // read + written per call
    std::function<void()> run;
  };
  const int64_t f = sizeof(float);
  std::vector<Kernel> kernels = {
      {"add        16M + 16M", 3 * n * f, [&] { add(x, y); }},
      {"mul        16M * 16M", 3 * n * f, [&] { mul(x, y); }},
      {"exp        16M", 2 * n * f, [&] { hydra::exp(x); }},
      {"silu       16M", 2 * n * f, [&] { silu(x); }},
      {"sum        rows of 2048x4096", 2048 * 4096 * f, [&] { sum(rows, {1}); }},
      {"softmax    rows of 2048x4096", 2 * 2048 * 4096 * f, [&] { softmax(rows, -1); }},
      {"log_softmax rows of 2048x4096", 2 * 2048 * 4096 * f, [&] { log_softmax(rows, -1); }},
      {"cross_entropy 2048x4096", 2048 * 4096 * f, [&] { cross_entropy(rows, labels); }},
      {"contiguous transpose 4096x4096", 2 * 4096 * 4096 * f, [&] { contiguous(transpose(sq, 0, 1)); }},
  };
  std::printf("%-40s %12s %14s %8s\n", "kernel", "Hydra GB/s", "memcpy GB/s", "ratio");
  for (const Kernel& k : kernels) {
    double t = time_it(k.run, reps);
    double bw = k.bytes / t / 1e9;
    double ref = copy_bw(k.bytes / 2) * 2 / 1e9;  // copying half the bytes moves them all (read + write)
    std::printf("%-40s %12.2f %14.2f %8.2f\n", k.what, bw, ref, bw / ref);
  }
  return 0;
}
