// Whole-model timing of a HydraTransformer preset: the Hydra half of bench/model_vs_torch.py, which
// runs this binary and bench/torch_hydra.py (the same model in PyTorch) in one go, each under
// /usr/bin/time -v for its peak memory, and prints the ratios.
//
//   forward: inference, no graph (NoGradGuard): logits of every head, (heads, B, T, vocab).
//   train:   forward with the graph, loss = mean over heads of each head's mean cross-entropy against
//            the inputs shifted by one, backward into every parameter's .grad (no optimizer step).
//            Gradients are dropped before each step, as zero_grad does.
//
// Prints one machine-readable line per mode:
//   RESULT impl=hydra preset=small mode=train batch=8 seq=256 iters=5 median_s=... min_s=... tokens_per_s=...
//
// Usage: bench_model --preset tiny|small [--mode forward|train|both] [--batch B] [--seq T]
//                    [--iters N] [--warmup W] [--threads N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "bench/timing.h"
#include "hydra/config.h"
#include "hydra/hydra_transformer.h"
#include "tensor/allocator.h"
#include "tensor/parallel.h"
#include "tensor/random.h"

using namespace hydra;

using bench::median;
using bench::now_seconds;

namespace {

// loss = mean over heads of each head's mean next-token cross-entropy.
Tensor hydra_loss(const Tensor& logits, const Tensor& targets) {
  Tensor total;
  for (int64_t k = 0; k < logits.size(0); ++k) {
    Tensor ce = cross_entropy(select(logits, 0, k), targets);
    total = total.defined() ? add(total, ce) : ce;
  }
  return mul_scalar(total, 1.0 / static_cast<double>(logits.size(0)));
}

struct Options {
  std::string preset = "tiny";
  std::string mode = "both";
  int64_t batch = 8, seq = 256;
  int iters = 5, warmup = 1, threads = 0;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "bench_model: %s\nusage: bench_model --preset tiny|small [--mode forward|train|both] [--batch B] "
               "[--seq T] [--iters N] [--warmup W] [--threads N]\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) usage(("missing value after " + arg).c_str());
    const char* value = argv[++i];
    if (arg == "--preset") o.preset = value;
    else if (arg == "--mode") o.mode = value;
    else if (arg == "--batch") o.batch = std::atoll(value);
    else if (arg == "--seq") o.seq = std::atoll(value);
    else if (arg == "--iters") o.iters = std::atoi(value);
    else if (arg == "--warmup") o.warmup = std::atoi(value);
    else if (arg == "--threads") o.threads = std::atoi(value);
    else usage(("unknown option " + arg).c_str());
  }
  if (o.mode != "forward" && o.mode != "train" && o.mode != "both") usage("--mode must be forward, train or both");
  if (o.batch < 1 || o.seq < 2 || o.iters < 1 || o.warmup < 0) usage("bad --batch/--seq/--iters/--warmup");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  set_num_threads(o.threads > 0 ? o.threads : default_num_threads());

  const HydraTransformerConfig config = HydraTransformerConfig::preset(o.preset);
  auto model = config.build("cpu", 0);
  // A full training step: every parameter gets a gradient (parameters start trainable).
  const int64_t vocab = config.base_config.vocab_size;

  // One fixed batch of T+1 tokens: inputs are the first T, targets the last T.
  Generator gen(1234);
  const Tensor tokens = gen.randint({o.batch, o.seq + 1}, 0, vocab);
  const Tensor inputs = contiguous(narrow(tokens, 1, 0, o.seq));
  const Tensor targets = contiguous(narrow(tokens, 1, 1, o.seq));
  const double tokens_per_step = static_cast<double>(o.batch * o.seq);

  auto report = [&](const char* mode, const std::vector<double>& times) {
    const double med = median(times);
    std::printf("RESULT impl=hydra preset=%s mode=%s batch=%lld seq=%lld threads=%d iters=%zu median_s=%.6f "
                "min_s=%.6f tokens_per_s=%.1f allocator_peak_mb=%.1f\n",
                o.preset.c_str(), mode, static_cast<long long>(o.batch), static_cast<long long>(o.seq),
                num_threads(), times.size(), med, *std::min_element(times.begin(), times.end()),
                tokens_per_step / med, static_cast<double>(allocator_stats().peak_in_use_bytes) / 1e6);
    std::fflush(stdout);
  };

  if (o.mode == "forward" || o.mode == "both") {
    std::vector<double> times;
    for (int i = 0; i < o.warmup + o.iters; ++i) {
      const double t0 = now_seconds();
      {
        NoGradGuard no_grad;
        Tensor logits = model->forward(inputs);
      }
      if (i >= o.warmup) times.push_back(now_seconds() - t0);
    }
    report("forward", times);
  }
  if (o.mode == "train" || o.mode == "both") {
    std::vector<double> times;
    for (int i = 0; i < o.warmup + o.iters; ++i) {
      const double t0 = now_seconds();
      for (auto& [name, p] : model->named_parameters()) p->zero_grad();
      Tensor loss = hydra_loss(model->forward(inputs), targets);
      loss.backward();
      if (i >= o.warmup) times.push_back(now_seconds() - t0);
    }
    report("train", times);
  }
  return 0;
}
