// hydra's trainer against PyTorch: short training runs recorded by scripts/make_train_fixtures.py
// (float64, torch.optim.AdamW / SGD, clip_grad_norm_, cross_entropy with ignore_index) reproduced by
// train::Trainer in float32: the learning rate of every step, the loss and each head's loss, the
// gradient norm, the final value of every trainable parameter, and frozen parameters bit-identical.
//
// NOTE: tolerances. Measured: losses and gradient norms within 1e-6 relative, weights within 6e-5
// absolute; PyTorch's own float32 run of the same fixture differs from its float64 run by 3e-7 and
// 2e-5. The checks below (1e-5 and 1e-4) are ten times tighter than the targets the project set
// (1e-4 and 1e-3). The fixtures keep the learning rate in a stable regime on purpose: at twice the
// learning rate of train_full the loss oscillates, and at the step where it turns (step 9) PyTorch's
// float32 and float64 runs already part by 1.4e-5 relative (Adam turns a gradient's rounding noise
// into a full-size update of the elements whose gradient is tiny), which tests float32's conditioning,
// not the trainer.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <algorithm>
#include <cstring>

#include "hydra/model_dir.h"
#include "io/safetensors.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "io/tokenizer.h"
#include "train/trainer.h"

using namespace hydra;
using hydra::test::fixture_path;
using hydra::test::TempDir;
using json = nlohmann::json;

namespace {

struct Loaded {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> meta;
};

Loaded load(const std::string& name) {
  Loaded l;
  l.tensors = io::load_safetensors(fixture_path(name), &l.meta);
  return l;
}

HydraTransformerConfig config_of(const Loaded& base) {
  json j = json::parse(base.meta.at("config"));
  j["format_version"] = kConfigFormatVersion;
  return HydraTransformerConfig::from_json(j, "train_base.safetensors");
}

// The base model as a model directory, the token stream as a raw uint16 file and the SFT rows as JSON
// Lines, in `dir`.
struct Inputs {
  std::string model_dir, tokens, sft;
};

Inputs write_inputs(const Loaded& base, const TempDir& dir) {
  Inputs in;
  auto model = config_of(base).build("cpu");
  nn::StateDict state;
  for (const auto& [name, t] : base.tensors)
    if (name != "tokens") state[name] = t;
  model->load_state_dict(state);
  in.model_dir = dir.file("model");
  save_model_dir(in.model_dir, *model);

  std::string raw;
  for (int64_t id : base.tensors.at("tokens").to_vector<int64_t>()) {
    const uint16_t v = static_cast<uint16_t>(id);
    raw.append(reinterpret_cast<const char*>(&v), 2);
  }
  in.tokens = dir.write("tokens.bin", raw);

  std::string jsonl;
  for (const auto& row : json::parse(base.meta.at("sft_rows")))
    jsonl += json({{"prompt", row[0]}, {"answer", row[1]}}).dump() + "\n";
  in.sft = dir.write("sft.jsonl", jsonl);
  return in;
}

train::TrainOptions options_for(const json& o, const Inputs& in, const std::string& out_dir) {
  train::TrainOptions t;
  t.model_dir = in.model_dir;
  t.out_dir = out_dir;
  if (o.at("objective") == "sft") {
    t.sft = in.sft;
    t.tokenizer = fixture_path("tokenizer/tiny.tokenizer.json");
  } else {
    t.data = {in.tokens};
  }
  t.data_order = train::DataOrder::Sequential;
  t.batch = o.at("batch");
  t.seq = o.at("seq");
  t.grad_accum = o.at("grad_accum");
  t.steps = o.at("steps");
  t.optimizer.kind = train::parse_optimizer_kind(o.at("optimizer"));
  t.optimizer.beta1 = o.at("beta1");
  t.optimizer.beta2 = o.at("beta2");
  t.optimizer.eps = o.at("eps");
  t.optimizer.momentum = o.at("momentum");
  t.optimizer.weight_decay = o.at("weight_decay");
  t.lr = o.at("lr");
  t.warmup = o.at("warmup");
  t.schedule = train::parse_schedule_kind(o.at("schedule"));
  t.min_lr_ratio = o.at("min_lr_ratio");
  t.clip = o.at("clip");
  t.train_heads = o.at("train_heads").get<std::vector<int64_t>>();
  if (o.contains("lora_rank")) {
    nn::LoraConfig lora;
    lora.rank = o.at("lora_rank");
    lora.alpha = o.at("lora_alpha");
    t.lora = lora;  // targets w1, w2, w3 of the trained heads (the default), dropout 0
  }
  return t;
}

double rel_diff(double got, double want) { return std::abs(got - want) / std::max(1.0, std::abs(want)); }

// Runs the fixture's training and compares everything it recorded. Returns the trainer for more checks.
void check_run(const std::string& name, double loss_tol, double weight_tol) {
  const Loaded base = load("train_base.safetensors");
  const Loaded run = load(name + ".safetensors");
  const json o = json::parse(run.meta.at("options"));
  TempDir dir("train-vs-torch");
  const Inputs in = write_inputs(base, dir);
  train::Trainer trainer(options_for(o, in, dir.file("run")));
  // The adapters' A matrices as PyTorch drew them (B starts at zero on both sides).
  int64_t adapters = 0;
  for (auto& [pname, p] : trainer.model().named_parameters()) {
    auto init = run.tensors.find("init." + pname);
    if (init == run.tensors.end()) continue;
    REQUIRE(init->second.shape() == p->shape());
    std::memcpy(p->data<float>(), init->second.data<float>(), static_cast<size_t>(p->numel()) * sizeof(float));
    ++adapters;
  }
  CHECK(adapters == static_cast<int64_t>(std::count_if(run.tensors.begin(), run.tensors.end(),
                                                       [](const auto& kv) { return kv.first.starts_with("init."); })));

  const std::vector<double> lr = run.tensors.at("lr").to_vector<double>();
  const std::vector<double> loss = run.tensors.at("loss").to_vector<double>();
  const std::vector<double> head_loss = run.tensors.at("head_loss").to_vector<double>();
  const std::vector<double> grad_norm = run.tensors.at("grad_norm").to_vector<double>();
  const size_t n_heads = head_loss.size() / loss.size();
  REQUIRE(static_cast<int64_t>(loss.size()) == trainer.total_steps());
  double worst_loss = 0, worst_norm = 0;
  for (size_t s = 0; s < loss.size(); ++s) {
    const train::StepMetrics m = trainer.step();
    INFO(name << " step " << s + 1);
    CHECK(m.step == static_cast<int64_t>(s + 1));
    CHECK(rel_diff(m.lr, lr[s]) < 1e-12);
    REQUIRE(m.head_loss.size() == n_heads);
    worst_loss = std::max(worst_loss, std::abs(m.loss - loss[s]) / std::abs(loss[s]));
    for (size_t k = 0; k < n_heads; ++k)
      worst_loss = std::max(worst_loss, std::abs(m.head_loss[k] - head_loss[s * n_heads + k]) / std::abs(head_loss[s * n_heads + k]));
    worst_norm = std::max(worst_norm, std::abs(m.grad_norm - grad_norm[s]) / std::abs(grad_norm[s]));
  }
  // The reference is float64; a float32 run drifts from it as each step's rounding feeds the next.
  // PyTorch's own float32 run of the same steps measures that drift (the fixture records it): Hydra
  // must stay within the fixed tolerance or within twice PyTorch's float32 drift, whichever is larger.
  // (Measured: on the SFT run, whose loss falls from 4.2 to 1.9 in 5 steps, PyTorch float32 drifts by
  // 8.6e-6 in the gradient norm; Hydra by 7.5e-6 built by gcc, 1.05e-5 by clang.)
  const json drift = json::parse(run.meta.at("torch_float32_error"));
  const double loss_bound = std::max(loss_tol, 2 * drift.at("loss").get<double>());
  const double norm_bound = std::max(loss_tol, 2 * drift.at("grad_norm").get<double>());
  const double weight_bound = std::max(weight_tol, 2 * drift.at("weights").get<double>());
  MESSAGE(name << ": worst relative loss difference " << worst_loss << ", grad norm " << worst_norm
               << " (PyTorch float32: " << drift.at("loss").get<double>() << ", " << drift.at("grad_norm").get<double>()
               << ")");
  CHECK(worst_loss < loss_bound);
  CHECK(worst_norm < norm_bound);

  // Final weights: every trainable parameter; frozen ones exactly as they started.
  double worst_weight = 0;
  int64_t checked = 0;
  for (auto& named : trainer.model().named_parameters()) {
    const std::string& pname = named.first;
    Tensor* p = named.second;
    const Tensor got = *p;
    auto final_it = run.tensors.find("final." + pname);
    if (final_it != run.tensors.end()) {
      const std::vector<float> a = got.to_vector<float>(), b = final_it->second.to_vector<float>();
      REQUIRE(a.size() == b.size());
      for (size_t i = 0; i < a.size(); ++i) worst_weight = std::max(worst_weight, static_cast<double>(std::abs(a[i] - b[i])));
      ++checked;
    } else if (!run.tensors.count("init." + pname)) {
      INFO("frozen parameter " << pname);
      const std::vector<float> a = got.to_vector<float>(), b = base.tensors.at(pname).to_vector<float>();
      CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
    }
  }
  MESSAGE(name << ": " << checked << " trained parameters, worst absolute weight difference " << worst_weight
               << " (PyTorch float32: " << drift.at("weights").get<double>() << ")");
  CHECK(checked == trainer.trainable().list().size());
  CHECK(worst_weight < weight_bound);
}

}  // namespace

TEST_CASE("full training: AdamW, weight decay, clipping, warm-up + cosine, grad-accum 2 (vs PyTorch)") {
  check_run("train_full", 1e-5, 1e-4);
}

TEST_CASE("head-only training: --train-heads 0,2, linear decay (vs PyTorch)") { check_run("train_heads", 1e-5, 1e-4); }

TEST_CASE("LoRA: rank 4 adapters on w1, w2, w3 of heads 0 and 2, only they train (vs PyTorch)") {
  check_run("train_lora", 1e-5, 1e-4);
}

TEST_CASE("SFT: answer-only loss, padded rows, token-weighted grad-accum (vs PyTorch)") {
  check_run("train_sft", 1e-5, 1e-4);
}

TEST_CASE("SGD with momentum and weight decay, no clipping (vs PyTorch)") { check_run("train_sgd", 1e-5, 1e-4); }

TEST_CASE("uncertainty head: one Brier step matches PyTorch's loss and the judge head's gradients") {
  const Loaded base = load("train_base.safetensors");
  const Loaded fix = load("train_judge.safetensors");
  const json o = json::parse(fix.meta.at("options"));
  TempDir dir("judge-vs-torch");
  const Inputs in = write_inputs(base, dir);
  std::string jsonl;
  for (const auto& row : json::parse(fix.meta.at("rows"))) jsonl += json({{"prompt", row[0]}, {"answer", row[1]}}).dump() + "\n";
  const std::string rows = dir.write("judge.jsonl", jsonl);

  train::TrainOptions t;
  t.model_dir = in.model_dir;
  t.out_dir = dir.file("run");
  t.sft = rows;
  t.tokenizer = fixture_path("tokenizer/tiny.tokenizer.json");
  train::JudgeOptions j;
  j.judge_head = o.at("judge_head");
  j.answer_head = o.at("answer_head");
  j.judge_template = o.at("template");
  j.token_a = o.at("token_a");
  j.token_b = o.at("token_b");
  t.judge = j;
  t.data_order = train::DataOrder::Sequential;
  t.batch = 9;
  t.seq = 16;
  t.steps = 1;
  t.clip = 0;
  t.optimizer.kind = train::OptimizerKind::SGD;
  train::Trainer trainer(t);

  // Pass 1: the answer head's greedy answers and whether they are right.
  const io::Tokenizer tok = io::Tokenizer::load(t.tokenizer);
  const std::vector<train::JudgeExample> ex = train::prepare_judge_examples(trainer.model(), rows, tok, j, 16);
  const std::vector<int64_t> answers = fix.tensors.at("answer_ids").to_vector<int64_t>();
  const std::vector<double> labels = fix.tensors.at("label").to_vector<double>();
  REQUIRE(ex.size() == answers.size());
  for (size_t i = 0; i < ex.size(); ++i) {
    INFO("row " << i);
    CHECK(ex[i].answer == std::string(1, static_cast<char>(answers[i])));
    CHECK(ex[i].correct == labels[i]);
  }

  const train::StepMetrics m = trainer.step();
  const double want = fix.tensors.at("loss").item<double>();
  MESSAGE("judge: Brier loss " << m.loss << " vs PyTorch " << want);
  CHECK(std::abs(m.loss - want) < 1e-5 * std::max(1.0, std::abs(want)));
  int64_t checked = 0;
  double worst = 0;
  for (const train::TrainableParameter& p : trainer.trainable().list()) {
    INFO(p.name);
    auto it = fix.tensors.find("grad." + p.name);
    REQUIRE(it != fix.tensors.end());
    const std::vector<float> got = p.grad.to_vector<float>(), ref = it->second.to_vector<float>();
    float scale = 1;
    for (float v : ref) scale = std::max(scale, std::abs(v));
    for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, static_cast<double>(std::abs(got[i] - ref[i]) / scale));
    ++checked;
  }
  MESSAGE("judge: " << checked << " gradients of the judge head, worst difference " << worst << " (relative to max |g|)");
  CHECK(checked == 11);  // one block: 4 attention matrices, 2 QK norms, 2 block norms, 3 feed-forward matrices
  CHECK(worst < 1e-5);
}
