// The memory estimates (train/memory_estimate.h) held against the allocator's own count: on the tiny
// and small presets, a forward pass, a full training step, head-only fine-tuning and LoRA fine-tuning
// each peak within 15% of their estimate. The peak is the allocator's peak_in_use_bytes, reset before
// each measured call; the training runs go through train::Trainer, as `hydra train` does.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>

#include "autograd/grad_mode.h"
#include "hydra/model_dir.h"
#include "nn/init.h"
#include "support/temp_dir.h"
#include "tensor/allocator.h"
#include "train/memory_estimate.h"
#include "train/trainer.h"

using namespace hydra;
using namespace hydra::train;
using hydra::test::TempDir;

namespace {

double in_use() { return static_cast<double>(allocator_stats().in_use_bytes); }

// How far in-use memory rises above its level before `run`, at its highest while `run` runs.
template <class F>
double peak_rise(F&& run) {
  const double before = in_use();
  reset_peak_in_use();
  run();
  return static_cast<double>(allocator_stats().peak_in_use_bytes) - before;
}

double mib(double bytes) { return bytes / (1 << 20); }

// A preset's model, its directory and a token file of random ids, in a temp dir. The weights are zeros:
// memory does not depend on them, and zeros are quicker to make than OLMo-core's initialisation.
struct World {
  TempDir dir{"memory"};
  std::string model_dir, data;
  HydraTransformerConfig config;
  std::unique_ptr<HydraTransformer> model;
  explicit World(const std::string& preset) : config(HydraTransformerConfig::preset(preset)) {
    model = config.build("empty");
    for (auto& [name, t] : model->named_parameters()) nn::init_zeros_(*t);
    model_dir = dir.file("model");
    save_model_dir(model_dir, *model);
    std::vector<uint16_t> ids(20000);
    uint32_t x = 7;
    for (auto& id : ids) {
      x = x * 1664525u + 1013904223u;
      id = static_cast<uint16_t>((x >> 8) % static_cast<uint32_t>(config.base_config.vocab_size));
    }
    data = dir.write("data.bin", std::string(reinterpret_cast<const char*>(ids.data()), ids.size() * 2));
  }
};

// One training step of `o` through the Trainer: the estimate (from the trainer's model, as the banner
// prints it) against what the allocator counts. The weights are memory-mapped from the model directory,
// so the allocator sees everything but them: the slabs (gradients, moments, LoRA adapters), counted at
// their size class, and the activations.
void check_step(const std::string& what, TrainOptions o, const std::string& out) {
  o.out_dir = out;
  o.steps = 1;
  const double before = in_use();
  Trainer trainer(o);
  const double slabs = in_use() - before;
  const MemoryEstimate e = trainer.memory_estimate();
  const double peak = peak_rise([&] { trainer.step(); });
  // The slabs, exactly: one gradient slab, AdamW's two moments, the adapters' own slab.
  const double adapters = e.weights - static_cast<double>(trainer.model().config().slab_bytes());
  auto rounded = [](double bytes) { return bytes > 0 ? static_cast<double>(allocation_bytes(static_cast<size_t>(bytes))) : 0.0; };
  CHECK(slabs == 3 * rounded(e.gradients) + rounded(adapters));
  const double estimated = e.gradients + e.optimizer + adapters + e.activations, measured = slabs + peak;
  MESSAGE(what, ": estimate ", mib(estimated), " MiB (activations ", mib(e.activations), "), measured ",
          mib(measured), " MiB (activations ", mib(peak), ")");
  CHECK(std::abs(estimated - measured) <= 0.15 * measured);
  CHECK(std::abs(e.activations - peak) <= 0.15 * peak);
}

void check_preset(const std::string& preset, int64_t batch, int64_t seq) {
  World w(preset);
  const HydraTransformerConfig& c = w.config;
  {
    // The built model: its weights are in the allocator's count too.
    const double weights = static_cast<double>(allocation_bytes(static_cast<size_t>(c.slab_bytes())));
    HydraTransformer* model = w.model.get();
    Tensor ids = zeros({batch, seq}, DType::Int64);
    const MemoryEstimate e = estimate_forward(c, batch, seq);
    NoGradGuard no_grad;
    const double peak = peak_rise([&] { model->forward(ids); });
    MESSAGE(preset, " forward: estimate ", mib(e.total()), " MiB (activations ", mib(e.activations), "), measured ",
            mib(weights + peak), " MiB (activations ", mib(peak), ")");
    CHECK(std::abs(e.total() - (weights + peak)) <= 0.15 * (weights + peak));
    CHECK(std::abs(e.activations - peak) <= 0.15 * peak);
  }
  TrainOptions o;
  o.model_dir = w.model_dir;
  o.data = {w.data};
  o.batch = batch;
  o.seq = seq;
  check_step(preset + " training", o, w.dir.file("full"));
  o.train_heads = {0};
  check_step(preset + " fine-tuning head 0", o, w.dir.file("head"));
  o.lora = nn::LoraConfig{};
  check_step(preset + " LoRA head 0", o, w.dir.file("lora"));
}

}  // namespace

TEST_CASE("memory estimates hold on the tiny preset") { check_preset("tiny", 4, 64); }

TEST_CASE("memory estimates hold on the small preset") { check_preset("small", 2, 64); }
