// The memory estimates (train/memory_estimate.h) held against the allocator's own count: on the tiny
// and small presets, a forward pass, an evaluation, a full training step, head-only fine-tuning and
// LoRA fine-tuning each peak within 15% of their estimate (the promise docs/training.md makes). The peak is the
// allocator's peak_in_use_bytes, reset before each measured call; the training steps go through
// train::Trainer, as `hydra train` runs them. The slabs must match to the byte, and the activations,
// which the estimator counts op by op, within 5%: what is left is the few small tensors malloc serves
// outside the count, so a change to what an op keeps fails here until the estimator follows it.
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
double mib(double bytes) { return bytes / (1 << 20); }

// How far the allocator's count rises above its level before `run`, at its highest while `run` runs:
// in use, and held (in use + cached, from an empty cache).
struct Rise {
  double in_use, held;
};

template <class F>
Rise peak_rise(F&& run) {
  release_cached_memory();
  const double before = in_use();
  reset_peak_in_use();
  run();
  const AllocatorStats s = allocator_stats();
  return {static_cast<double>(s.peak_in_use_bytes) - before, static_cast<double>(s.peak_held_bytes) - before};
}

// The estimate against the measured peak. `slabs` is what the allocator counts for the slabs (each
// rounded up to its size class), `estimated_slabs` their estimate (their size: the pages past it are
// never touched). Checked: the total against the peak in use within 15%, its activations within 5%
// (see the top), and the total against the allocator's whole footprint, cached blocks included and
// the slabs at their size, within 15% too.
void check_peak(const std::string& what, double slabs, double estimated_slabs, double activations, const Rise& r) {
  const double estimated = estimated_slabs + activations, measured = slabs + r.in_use, held = estimated_slabs + r.held;
  MESSAGE(what, ": estimate ", mib(estimated), " MiB (activations ", mib(activations), "); measured ", mib(measured),
          " MiB in use (activations ", mib(r.in_use), "), ", mib(held), " MiB held with the cache");
  CHECK(std::abs(estimated - measured) <= 0.15 * measured);
  CHECK(std::abs(activations - r.in_use) <= 0.05 * r.in_use);
  CHECK(std::abs(estimated - held) <= 0.15 * held);
}

// A preset's model, its directory and a token file of random ids, in a temp dir. The weights are zeros:
// memory does not depend on them, and zeros are quicker to make than OLMo-core's initialisation.
struct World {
  TempDir dir{"memory"};
  std::string model_dir, data;
  HydraTransformerConfig config;
  std::unique_ptr<HydraTransformer> model;
  double weights = 0;  // what the allocator counts for the model's slab
  explicit World(const std::string& preset) : config(HydraTransformerConfig::preset(preset)) {
    const double before = in_use();
    model = config.build("empty");
    weights = in_use() - before;
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
// prints it) against what the allocator counts. The trainer reads the weights into a slab of the
// model's own, so the allocator sees everything: the slabs (weights, gradients, moments, LoRA adapters),
// each counted at its size class, and the activations.
void check_step(const std::string& what, TrainOptions o, const std::string& out) {
  o.out_dir = out;
  o.steps = 1;
  const double before = in_use();
  Trainer trainer(o);
  const double slabs = in_use() - before;
  const MemoryEstimate e = trainer.memory_estimate();
  const Rise rise = peak_rise([&] { trainer.step(); });
  // The slabs, exactly: the weights, one gradient slab, AdamW's two moments, the adapters' own slab.
  const double model_slab = static_cast<double>(trainer.model().config().slab_bytes());
  const double adapters = e.weights - model_slab;
  auto rounded = [](double bytes) {
    return bytes > 0 ? static_cast<double>(allocation_bytes(static_cast<size_t>(bytes))) : 0.0;
  };
  CHECK(slabs == rounded(model_slab) + 3 * rounded(e.gradients) + rounded(adapters));
  check_peak(what, slabs, e.weights + e.gradients + e.optimizer, e.activations, rise);
}

void check_preset(const std::string& preset, int64_t batch, int64_t seq) {
  World w(preset);
  const HydraTransformerConfig& c = w.config;
  {
    // The built model: its weights are in the allocator's count too.
    Tensor ids = zeros({batch, seq}, DType::Int64);
    const MemoryEstimate e = estimate_forward(c, batch, seq);
    CHECK(w.weights == static_cast<double>(allocation_bytes(static_cast<size_t>(e.weights))));
    NoGradGuard no_grad;
    check_peak(preset + " forward", w.weights, e.weights, e.activations, peak_rise([&] { w.model->forward(ids); }));
  }
  {
    // train::evaluate on one batch, as `hydra eval` and the trainer run it.
    io::TokenFileOptions token_options;
    token_options.vocab_size = c.base_config.vocab_size;
    std::vector<io::TokenFile> files;
    files.push_back(io::open_token_file(w.data, token_options));
    const TokenWindows data(std::move(files), seq, seq + 1);
    EvalOptions eo;
    eo.batch_size = batch;
    eo.max_batches = 1;
    std::vector<int64_t> heads;
    for (int64_t k = 0; k < c.n_heads; ++k) heads.push_back(k);
    const MemoryEstimate e = estimate_evaluation(c, batch, seq);
    check_peak(preset + " evaluation", w.weights, e.weights, e.activations,
               peak_rise([&] { evaluate(*w.model, data, heads, eo); }));
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

// NOTE: skipped in the sanitizer tree. The counts are the allocator's own and depend only on shapes, so
// an instrumented build measures nothing the Release run does not; there the small preset's 290 MiB of
// weights, written and read back, and three trainers' slabs took about 25 s (tiny: 5 s, kept).
#ifdef HYDRA_SANITIZE
constexpr bool kSkipSmall = true;
#else
constexpr bool kSkipSmall = false;
#endif

TEST_CASE("memory estimates hold on the small preset" * doctest::skip(kSkipSmall)) { check_preset("small", 2, 64); }
