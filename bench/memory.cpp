// bench_memory: one run's memory estimate (train/memory_estimate.h) beside what the allocator counted.
//
//   build/bench_memory MODEL_DIR TOKENS.bin CASE [--batch 8] [--seq 256]
//
// CASE is forward (HydraTransformer::forward of every head, no graph), eval (train::evaluate on one
// batch), train (two Trainer steps, everything trains, AdamW), heads (head 0 alone) or lora (rank-8
// adapters on head 0's w1, w2, w3). One case per process, so that `/usr/bin/time -v` around it gives
// that case's peak RSS. The model is loaded as the CLI loads it (its weights a copy-on-write mapping,
// outside the allocator's count); TOKENS is a raw uint16 token file. Prints one line:
//   RESULT case=train estimate_mib=... without_weights_mib=... in_use_mib=... held_mib=...
// in_use and held are the allocator's peaks over the whole case (tensor/allocator.h): in use, and in
// use plus cached; both count each slab at its size class, the estimate at its size.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "autograd/grad_mode.h"
#include "hydra/model_dir.h"
#include "tensor/allocator.h"
#include "train/evaluate.h"
#include "train/memory_estimate.h"
#include "train/trainer.h"

using namespace hydra;
using namespace hydra::train;

namespace {

MemoryEstimate run_case(const std::string& model_dir, const std::string& tokens, const std::string& what,
                        int64_t batch, int64_t seq) {
  if (what == "forward" || what == "eval") {
    auto model = load_model_dir(model_dir);
    const HydraTransformerConfig& c = model->config();
    NoGradGuard no_grad;
    if (what == "forward") {
      model->forward(zeros({batch, seq}, DType::Int64));
      return estimate_forward(c, batch, seq);
    }
    io::TokenFileOptions token_options;
    token_options.vocab_size = c.base_config.vocab_size;
    token_options.dtype = io::TokenDType::UInt16;
    std::vector<io::TokenFile> files;
    files.push_back(io::open_token_file(tokens, token_options));
    const TokenWindows data(std::move(files), seq, seq + 1);
    std::vector<int64_t> heads;
    for (int64_t k = 0; k < c.n_heads; ++k) heads.push_back(k);
    EvalOptions eo;
    eo.batch_size = batch;
    eo.max_batches = 1;
    evaluate(*model, data, heads, eo);
    return estimate_evaluation(c, batch, seq);
  }
  const std::filesystem::path out =
      std::filesystem::temp_directory_path() / ("bench-memory-" + std::to_string(::getpid()));
  TrainOptions o;
  o.model_dir = model_dir;
  o.data = {tokens};
  o.token_dtype = io::TokenDType::UInt16;
  o.out_dir = out.string();
  o.batch = batch;
  o.seq = seq;
  o.steps = 2;
  if (what != "train") o.train_heads = {0};
  if (what == "lora") o.lora = nn::LoraConfig{};
  MemoryEstimate e;
  {
    Trainer trainer(o);
    trainer.step();
    trainer.step();
    e = trainer.memory_estimate();
  }
  std::filesystem::remove_all(out);
  return e;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: bench_memory MODEL_DIR TOKENS.bin forward|eval|train|heads|lora [--batch 8] [--seq 256]\n");
    return 2;
  }
  const std::string model_dir = argv[1], tokens = argv[2], what = argv[3];
  if (what != "forward" && what != "eval" && what != "train" && what != "heads" && what != "lora") {
    std::fprintf(stderr, "bench_memory: unknown case '%s' (forward, eval, train, heads or lora)\n", what.c_str());
    return 2;
  }
  int64_t batch = 8, seq = 256;
  for (int i = 4; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--batch")) batch = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--seq")) seq = std::atoll(argv[i + 1]);
  }
  try {
    const MemoryEstimate e = run_case(model_dir, tokens, what, batch, seq);
    const AllocatorStats s = allocator_stats();
    auto mib = [](double bytes) { return bytes / (1 << 20); };
    std::printf("RESULT case=%s batch=%lld seq=%lld estimate_mib=%.1f without_weights_mib=%.1f in_use_mib=%.1f "
                "held_mib=%.1f\n",
                what.c_str(), static_cast<long long>(batch), static_cast<long long>(seq), mib(e.total()),
                mib(e.total() - e.weights), mib(static_cast<double>(s.peak_in_use_bytes)),
                mib(static_cast<double>(s.peak_held_bytes)));
  } catch (const std::exception& err) {
    std::fprintf(stderr, "bench_memory: %s\n", err.what());
    return 2;
  }
  return 0;
}
