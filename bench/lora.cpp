// What LoRA costs: one head's training step (forward + backward, trunk frozen and run without a graph)
// with the head fully trainable vs rank-R adapters on its feed-forward (w1, w2, w3) with only the adapters
// trainable (dropout 0 and 0.05), and the inference forward of the adapted model vs the merged one.
// Medians of interleaved repetitions (the machine is shared and noisy).
//
// Usage: bench_lora [--preset tiny|small] [--batch B] [--seq T] [--rank R] [--reps N] [--threads N]
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "bench/timing.h"
#include "hydra/lora.h"
#include "nn/cross_entropy.h"
#include "tensor/parallel.h"

using namespace hydra;

namespace {

struct Options {
  std::string preset = "small";
  int64_t batch = 4, seq = 256, rank = 8;
  int reps = 7, threads = 0;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--preset") o.preset = value;
    else if (flag == "--batch") o.batch = std::atoll(value.c_str());
    else if (flag == "--seq") o.seq = std::atoll(value.c_str());
    else if (flag == "--rank") o.rank = std::atoll(value.c_str());
    else if (flag == "--reps") o.reps = std::atoi(value.c_str());
    else if (flag == "--threads") o.threads = std::atoi(value.c_str());
    else {
      std::fprintf(stderr, "bench_lora: unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  return o;
}

// One step on head 0: the trunk without a graph, then head 0 and the lm_head with one.
double train_step(HydraTransformer& model, const Tensor& ids, const Tensor& targets) {
  const double t0 = bench::now_seconds();
  Tensor hidden;
  {
    NoGradGuard no_grad;
    hidden = model.forward_trunk(ids);
  }
  Tensor logits = model.forward_heads(hidden, std::vector<int64_t>{0});  // shape: (1, B, T, V)
  Tensor loss = cross_entropy(logits, unsqueeze(targets, 0));
  loss.backward();
  for (auto& [name, t] : model.named_parameters()) t->zero_grad();
  return bench::now_seconds() - t0;
}

double inference(HydraTransformer& model, const Tensor& ids) {
  const double t0 = bench::now_seconds();
  NoGradGuard no_grad;
  Tensor logits = model.forward(ids, std::nullopt, std::vector<int64_t>{0});
  return bench::now_seconds() - t0;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  set_num_threads(o.threads > 0 ? o.threads : default_num_threads());
  const HydraTransformerConfig config = HydraTransformerConfig::preset(o.preset);
  const int64_t V = config.base_config.vocab_size;
  Generator data(1);
  const Tensor ids = data.randint({o.batch, o.seq}, 0, V), targets = data.randint({o.batch, o.seq}, 0, V);

  auto full = config.build("cpu", 0);
  full->set_trainable("heads.0.*", true);
  auto lora = config.build("cpu", 0);
  Generator init(2), dropout_gen(3);
  nn::LoraConfig lc;
  lc.rank = o.rank;
  add_lora_adapters(*lora, lc, {0}, init);
  auto lora_dropout = config.build("cpu", 0);
  lc.dropout = 0.05;
  add_lora_adapters(*lora_dropout, lc, {0}, init);
  nn::set_lora_training(*lora_dropout, &dropout_gen);
  auto merged = config.build("cpu", 0);
  add_lora_adapters(*merged, lc, {0}, init);
  const double t_merge0 = bench::now_seconds();
  merge_lora_adapters(*merged);
  const double t_merge = bench::now_seconds() - t_merge0;

  std::vector<std::pair<std::string, std::function<double()>>> cases = {
      {"train step, head 0 fully trainable", [&] { return train_step(*full, ids, targets); }},
      {"train step, LoRA on w1,w2,w3 only", [&] { return train_step(*lora, ids, targets); }},
      {"train step, LoRA, dropout 0.05", [&] { return train_step(*lora_dropout, ids, targets); }},
      {"inference, adapters unmerged", [&] { return inference(*lora, ids); }},
      {"inference, merged", [&] { return inference(*merged, ids); }},
  };
  std::vector<std::vector<double>> times(cases.size());
  for (auto& c : cases) c.second();  // warm-up
  for (int r = 0; r < o.reps; ++r)
    for (size_t i = 0; i < cases.size(); ++i) times[i].push_back(cases[i].second());
  std::printf("preset %s, batch %lld x seq %lld, rank %lld, %d threads, %d reps (medians)\n", o.preset.c_str(),
              static_cast<long long>(o.batch), static_cast<long long>(o.seq), static_cast<long long>(o.rank),
              num_threads(), o.reps);
  for (size_t i = 0; i < cases.size(); ++i)
    std::printf("  %-40s %8.1f ms\n", cases[i].first.c_str(), 1e3 * bench::median(times[i]));
  std::printf("  %-40s %8.1f ms\n", "merge_lora_adapters (one head)", 1e3 * t_merge);
  return 0;
}
