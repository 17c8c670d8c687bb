// The lm_head's loss, fused or not: forward + backward of cross_entropy(linear(x, W)) against
// nn::linear_cross_entropy (nn/linear_cross_entropy.h) at the presets' shapes, alternating the two in
// one process (the machines are shared: alternation spreads the noise over both), medians of --reps,
// and the allocator's peak of each.
//
// Usage: bench_lm_head_loss [--threads N] [--reps R] [--block-rows R]
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "bench/timing.h"
#include "nn/cross_entropy.h"
#include "nn/linear.h"
#include "nn/linear_cross_entropy.h"
#include "tensor/allocator.h"
#include "tensor/parallel.h"
#include "tensor/random.h"

using namespace hydra;

namespace {

struct Shape3 {
  const char* what;
  int64_t N, C, V;
};

// One forward + backward; returns the seconds and leaves the allocator's peak in *peak_mb.
double run(bool fused, const Tensor& x0, const Tensor& w0, const Tensor& t, int64_t block_rows, double* peak_mb) {
  Tensor x = x0.detach().set_requires_grad(), w = w0.detach().set_requires_grad();
  reset_peak_in_use();
  const size_t base = allocator_stats().in_use_bytes;
  const double t0 = bench::now_seconds();
  Tensor loss = fused ? nn::linear_cross_entropy(x, w, t, 1.0 / static_cast<double>(t.numel()), kIgnoreIndex, block_rows)
                      : cross_entropy(nn::linear(x, w), t);
  loss.backward();
  const double s = bench::now_seconds() - t0;
  *peak_mb = static_cast<double>(allocator_stats().peak_in_use_bytes - base) / (1 << 20);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = default_num_threads(), reps = 5;
  int64_t block_rows = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--threads") threads = std::atoi(argv[i + 1]);
    else if (flag == "--reps") reps = std::atoi(argv[i + 1]);
    else if (flag == "--block-rows") block_rows = std::atoll(argv[i + 1]);
    else {
      std::fprintf(stderr, "bench_lm_head_loss: unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  set_num_threads(threads);
  std::printf("lm_head + cross-entropy, forward + backward, %d threads, medians of %d:\n", num_threads(), reps);
  std::printf("  %-30s %10s %10s %12s %12s\n", "shape (rows x C -> V)", "unfused ms", "fused ms", "unfused MiB",
              "fused MiB");
  for (const Shape3 s : {Shape3{"tiny 8x128, 256 -> 4096", 1024, 256, 4096},
                         Shape3{"small 8x256, 512 -> 16384", 2048, 512, 16384},
                         Shape3{"gpt2 4x256, 768 -> 50304", 1024, 768, 50304}}) {
    Generator gen(7);
    const Tensor x = gen.normal({s.N, s.C}), w = gen.normal({s.V, s.C}, 0, 0.02);
    const Tensor t = gen.randint({s.N}, 0, s.V);
    std::vector<double> a, b;
    double peak_a = 0, peak_b = 0;
    run(false, x, w, t, block_rows, &peak_a);  // warm-up both
    run(true, x, w, t, block_rows, &peak_b);
    for (int r = 0; r < reps; ++r) {
      a.push_back(run(false, x, w, t, block_rows, &peak_a));
      b.push_back(run(true, x, w, t, block_rows, &peak_b));
    }
    std::printf("  %-30s %10.1f %10.1f %12.1f %12.1f\n", s.what, 1e3 * bench::median(a), 1e3 * bench::median(b), peak_a,
                peak_b);
  }
  return 0;
}
