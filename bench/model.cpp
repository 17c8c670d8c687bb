// Whole-model timing of a HydraTransformer preset: the Hydra half of bench/model_vs_torch.py, which
// runs this binary and bench/torch_hydra.py (the same model in PyTorch) in one go, each under
// /usr/bin/time -v for its peak memory, and prints the ratios.
//
//   forward:  inference, no graph (NoGradGuard): logits of every head, (heads, B, T, vocab).
//   train:    one full optimizer step of `hydra train` (train::Trainer::step): every head's loss
//             against the inputs shifted by one, backward into the gradient slab, the global norm and
//             clipping at 1.0, AdamW (lr 3e-4, weight decay 0.1), all parameters trained. The data is
//             a file of random ids read in sequential order.
//   finetune: the same step with the trunk frozen (--freeze 'trunk.*'): the trunk runs forward
//             only, every head and the lm_head train.
//   lora:     the same step with rank-8 LoRA adapters on every head's w1, w2, w3 (--lora-rank 8), only
//             the adapters training.
//   decode:   `hydra generate`'s code path (hydra::generate): batch 1, a 16-token prompt, 128 new
//             tokens, greedy on the mean of all heads, KV-cached. The time is the 128 decoding steps
//             (the prompt's prefill is not counted).
//
// Prints one machine-readable line per mode:
//   RESULT impl=hydra preset=small mode=train batch=8 seq=256 iters=5 median_s=... min_s=... tokens_per_s=...
//
// Usage: bench_model --preset tiny|small|gpt2 [--mode forward|train|finetune|lora|decode] [--batch B]
//                    [--seq T] [--iters N] [--warmup W] [--threads N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdlib.h>
#include <filesystem>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "bench/timing.h"
#include "hydra/config.h"
#include "hydra/generate.h"
#include "hydra/hydra_transformer.h"
#include "hydra/model_dir.h"
#include "nn/module.h"
#include "tensor/allocator.h"
#include "tensor/gemm_bf16.h"
#include "tensor/parallel.h"
#include "tensor/random.h"
#include "train/trainer.h"

using namespace hydra;

using bench::median;
using bench::now_seconds;

namespace {

struct Options {
  std::string preset = "tiny";
  std::string mode = "train";
  int64_t batch = 8, seq = 256;
  int iters = 5, warmup = 1, threads = 0;
  std::string dtype = "fp32";  // decode only: bf16 stores every weight matrix as bfloat16 first
  std::string model_dir;       // decode only: load this model directory (as `hydra generate` does)
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "bench_model: %s\nusage: bench_model --preset tiny|small|gpt2 [--mode forward|train|finetune|lora|decode] "
               "[--batch B] [--seq T] [--iters N] [--warmup W] [--threads N] [--dtype fp32|bf16] [--model-dir DIR] (the last two: decode)\n",
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
    else if (arg == "--dtype") o.dtype = value;
    else if (arg == "--model-dir") o.model_dir = value;
    else usage(("unknown option " + arg).c_str());
  }
  if (o.mode != "forward" && o.mode != "train" && o.mode != "finetune" && o.mode != "lora" && o.mode != "decode")
    usage("--mode must be forward, train, finetune, lora or decode");
  if (o.dtype != "fp32" && o.dtype != "bf16") usage("--dtype must be fp32 or bf16");
  if ((o.dtype == "bf16" || !o.model_dir.empty()) && o.mode != "decode")
    usage("--dtype bf16 and --model-dir are for --mode decode only");
  if (o.batch < 1 || o.seq < 2 || o.iters < 1 || o.warmup < 0) usage("bad --batch/--seq/--iters/--warmup");
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  set_num_threads(o.threads > 0 ? o.threads : default_num_threads());

  const HydraTransformerConfig config = HydraTransformerConfig::preset(o.preset);
  // Decoding from a model directory loads it as `hydra generate --dtype` does (bfloat16 straight from the
  // file, never the whole float32 model in memory), so the peak memory is the command line's.
  auto model = o.model_dir.empty() ? config.build("cpu", 0)
                                   : load_model_dir(o.model_dir, o.dtype == "bf16" ? DType::BFloat16 : DType::Float32);
  const int64_t vocab = config.base_config.vocab_size;

  // One fixed batch of T+1 tokens: inputs are the first T, targets the last T.
  Generator gen(1234);
  const Tensor tokens = gen.randint({o.batch, o.seq + 1}, 0, vocab);
  const Tensor inputs = contiguous(narrow(tokens, 1, 0, o.seq));
  const double tokens_per_step = static_cast<double>(o.batch * o.seq);

  auto report = [&](const std::vector<double>& times, double tokens_per_iter) {
    const double med = median(times);
    std::printf("RESULT impl=hydra preset=%s mode=%s dtype=%s%s%s batch=%lld seq=%lld threads=%d iters=%zu "
                "median_s=%.6f min_s=%.6f max_s=%.6f tokens_per_s=%.1f allocator_peak_mb=%.1f\n",
                o.preset.c_str(), o.mode.c_str(), o.dtype.c_str(), o.dtype == "bf16" ? " bf16_path=" : "",
                o.dtype == "bf16" ? kernels::bf16_path_name(kernels::bf16_path()) : "", static_cast<long long>(o.batch), static_cast<long long>(o.seq),
                num_threads(), times.size(), med, *std::min_element(times.begin(), times.end()),
                *std::max_element(times.begin(), times.end()), tokens_per_iter / med,
                static_cast<double>(allocator_stats().peak_in_use_bytes) / 1e6);
    std::fflush(stdout);
  };

  std::vector<double> times;
  if (o.mode == "forward") {
    for (int i = 0; i < o.warmup + o.iters; ++i) {
      const double t0 = now_seconds();
      {
        NoGradGuard no_grad;
        Tensor logits = model->forward(inputs);
      }
      if (i >= o.warmup) times.push_back(now_seconds() - t0);
    }
    report(times, tokens_per_step);
    return 0;
  }
  if (o.mode == "decode") {
    if (o.dtype == "bf16" && o.model_dir.empty()) nn::convert_matrices_to_bfloat16(*model);
    // The first 16 ids of the batch are the prompt. generate() emits its first token from the prompt's
    // logits and runs the model once per further token: max_new_tokens = 129 is 128 decoding steps.
    const std::vector<int64_t> row = contiguous(narrow(narrow(tokens, 0, 0, 1), 1, 0, 16)).to_vector<int64_t>();
    GenerateOptions g;
    g.mode = GenerateMode::Mean;
    g.temperature = 0;
    g.max_new_tokens = 129;
    for (int i = 0; i < o.warmup + o.iters; ++i) {
      const GenerateResult r = generate(*model, row, g);
      if (i >= o.warmup) times.push_back(r.decode_seconds);
    }
    report(times, 128.0);
    return 0;
  }

  // train, finetune, lora: the trainer reads a model directory and token files: write both to a scratch
  // directory.
  char scratch_template[] = "/tmp/hydra-bench-XXXXXX";
  const std::string scratch = ::mkdtemp(scratch_template);
  save_model_dir(scratch + "/model", *model);
  // The model built here is not the trainer's (it loads the directory as `hydra train` does): give its
  // memory back to the OS, so the process's peak is the training's, as the command line's would be.
  model.reset();
  release_cached_memory();
  const int steps = o.warmup + o.iters;
  const Tensor ids = gen.randint({steps * o.batch * o.seq + 1}, 0, vocab, DType::Int64);
  std::string raw;
  for (int64_t id : ids.to_vector<int64_t>()) {
    const uint32_t v = static_cast<uint32_t>(id);
    raw.append(reinterpret_cast<const char*>(&v), 4);
  }
  std::FILE* f = std::fopen((scratch + "/tokens.bin").c_str(), "wb");
  std::fwrite(raw.data(), 1, raw.size(), f);
  std::fclose(f);

  train::TrainOptions t;
  t.model_dir = scratch + "/model";
  t.out_dir = scratch + "/run";
  t.data = {scratch + "/tokens.bin"};
  t.token_dtype = io::TokenDType::UInt32;
  t.data_order = train::DataOrder::Sequential;
  t.batch = o.batch;
  t.seq = o.seq;
  t.steps = steps;
  t.schedule = train::ScheduleKind::Constant;
  if (o.mode == "finetune") t.freeze = {"trunk.*"};
  if (o.mode == "lora") t.lora = nn::LoraConfig{};  // rank 8 on w1, w2, w3 of every head
  {
    train::Trainer trainer(t);
    for (int i = 0; i < steps; ++i) {
      const double t0 = now_seconds();
      trainer.step();
      if (i >= o.warmup) times.push_back(now_seconds() - t0);
    }
  }
  std::filesystem::remove_all(scratch);
  report(times, tokens_per_step);
  return 0;
}
