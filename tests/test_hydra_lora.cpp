// LoRA (nn/lora.h, hydra/lora.h): PEFT's conventions and everything around them.
//   - init: B zero (a fresh adapter leaves every logit bit-identical), A kaiming-uniform (a = √5) within
//     PyTorch's bound; the adapters' own slab, the base weights untouched;
//   - forward = base + scaling · B A x against a float64 reference built from primitives, and a gradcheck
//     of an adapted linear in float64 (x, W, A, B; with dropout, the mask fixed);
//   - dropout on the adapter input only, only while training; determinism (same generator state, 1 vs 2
//     threads bit-identical);
//   - merging (logits within 1e-5 of the adapted model's, W + scaling·B A rounded once), saving and
//     loading (bit-identical logits), checkpoints;
//   - every target-matching error and every adapter-file error.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "hydra/lora.h"
#include "hydra/model_dir.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "nn/init.h"
#include "support/fixtures.h"
#include "support/op_harness.h"
#include "support/temp_dir.h"
#include "support/threads.h"
#include "tensor/copy.h"
#include "tensor/dropout.h"
#include "tensor/parallel.h"
#include "hydra/loss.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"
#include "train/trainable.h"

using namespace hydra;
using hydra::test::check_error_case;
using hydra::test::ErrorCase;
using hydra::test::TempDir;
namespace fs = std::filesystem;

namespace {

// Three heads of two blocks on a one-block trunk: vocab 40, d 16, FFN 24.
HydraTransformerConfig small_config(int64_t d_model = 16, int64_t hidden = 24) {
  HydraTransformerConfig c;
  c.base_config.vocab_size = 40;
  c.base_config.d_model = d_model;
  c.base_config.n_layers = 3;
  c.base_config.n_heads = 2;
  c.base_config.n_kv_heads = 2;
  c.base_config.head_dim = d_model / 2;
  c.base_config.hidden_size = hidden;
  c.n_heads = 3;
  c.trunk_layers = 1;
  c.head_layers = 2;
  return c;
}

Tensor sample_ids(int64_t batch = 2, int64_t seq = 5) { return Generator(21).randint({batch, seq}, 0, 40); }

std::vector<float> logits_of(HydraTransformer& model, const Tensor& ids) {
  NoGradGuard no_grad;
  return model.forward(ids).to_vector<float>();
}

// Gives every lora_B a random value (a trained adapter), so adapters change the output.
void randomize_lora_B(HydraTransformer& model, uint64_t seed, double std = 0.5) {
  Generator g(seed);
  NoGradGuard no_grad;
  for (auto& [name, t] : model.named_parameters())
    if (name.ends_with(".lora_B.weight")) kernels::copy_into(*t, g.normal(t->shape(), 0.0, std));
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(static_cast<double>(a[i]) - b[i]));
  return m;
}

nn::LoraConfig lora_config(int64_t rank, std::vector<std::string> targets = {"w1", "w2", "w3"}, double alpha = 0,
                           double dropout = 0) {
  nn::LoraConfig c;
  c.rank = rank;
  c.alpha = alpha;
  c.dropout = dropout;
  c.targets = std::move(targets);
  return c;
}

// A model with rank-4 adapters on w1, w2, w3 of heads 0 and 2, B randomised.
std::unique_ptr<HydraTransformer> adapted_model(uint64_t seed = 1) {
  auto model = small_config().build("cpu", seed);
  Generator init(seed + 100);
  add_lora_adapters(*model, lora_config(4), {0, 2}, init);
  randomize_lora_B(*model, seed + 200);
  return model;
}

std::vector<std::string> feed_forward_paths(const std::vector<int64_t>& heads, int64_t blocks = 2) {
  std::vector<std::string> out;
  for (int64_t k : heads)
    for (int64_t j = 0; j < blocks; ++j)
      for (const char* w : {"w1", "w2", "w3"})
        out.push_back("heads." + std::to_string(k) + ".blocks." + std::to_string(j) + ".feed_forward." + w);
  return out;
}

}  // namespace

// ---- the math of one adapter ----

TEST_CASE("kaiming_uniform(a=√5) has PyTorch's bound, 1/√in up to PyTorch's own rounding") {
  // bound = √3 · gain / √fan_in with gain = √(2 / (1 + a²)), as printed by PyTorch 1.13
  // (torch.nn.init.calculate_gain('leaky_relu', math.sqrt(5)) and the lines of kaiming_uniform_).
  const std::vector<std::pair<int64_t, double>> torch_bounds = {
      {4, 0.49999999999999994}, {7, 0.3779644730092272}, {256, 0.06249999999999999}, {1024, 0.031249999999999997}};
  for (const auto& torch_bound : torch_bounds) {
    const int64_t fan_in = torch_bound.first;
    const double bound = torch_bound.second;
    Tensor w = zeros({3000, fan_in}, DType::Float64);
    Generator g(5);
    nn::init_kaiming_uniform_(w, g, std::sqrt(5.0));
    CHECK(g.offset() == static_cast<uint64_t>(w.numel()));
    double lo = 1, hi = -1, sum = 0, sq = 0;
    for (double v : w.to_vector<double>()) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
      sum += v;
      sq += v * v;
    }
    const double n = static_cast<double>(w.numel());
    INFO("fan_in ", fan_in);
    CHECK(lo >= -bound);
    CHECK(hi < bound);
    // Uniform on (−b, b): the extremes come within a few b/n of the ends, the variance is b²/3.
    CHECK(lo < -bound * (1 - 1e-3));
    CHECK(hi > bound * (1 - 1e-3));
    CHECK(std::abs(sum / n) < 0.01 * bound);
    CHECK(std::abs(sq / n / (bound * bound / 3) - 1) < 0.02);
  }
}

TEST_CASE("lora_linear = x Wᵀ + scaling · (x Aᵀ) Bᵀ: against primitives and against plain float64 loops") {
  Generator g(3);
  const int64_t in = 7, out = 5, rank = 3;
  Tensor x = g.normal({2, 4, in}, 0, 1, DType::Float64), w = g.normal({out, in}, 0, 1, DType::Float64);
  Tensor a = g.normal({rank, in}, 0, 1, DType::Float64), b = g.normal({out, rank}, 0, 1, DType::Float64);
  const double scaling = 16.0 / 3;
  Tensor fused = nn::lora_linear(x, w, a, b, scaling);
  Tensor reference = nn::lora_linear_reference(x, w, a, b, scaling);
  // Plain loops: y[r, o] = Σ_i x[r, i] w[o, i] + scaling · Σ_k b[o, k] Σ_i a[k, i] x[r, i].
  std::vector<double> xv = x.to_vector<double>(), wv = w.to_vector<double>(), av = a.to_vector<double>(),
                      bv = b.to_vector<double>(), fv = fused.to_vector<double>(), rv = reference.to_vector<double>();
  REQUIRE(fused.shape() == Shape{2, 4, out});
  for (int64_t r = 0; r < 8; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double y = 0, delta = 0;
      for (int64_t i = 0; i < in; ++i) y += xv[r * in + i] * wv[o * in + i];
      for (int64_t k = 0; k < rank; ++k) {
        double ax = 0;
        for (int64_t i = 0; i < in; ++i) ax += av[k * in + i] * xv[r * in + i];
        delta += bv[o * rank + k] * ax;
      }
      y += scaling * delta;
      CHECK(std::abs(fv[r * out + o] - y) <= 1e-12 * std::max(1.0, std::abs(y)));
      CHECK(std::abs(rv[r * out + o] - y) <= 1e-12 * std::max(1.0, std::abs(y)));
    }
  // Linear::forward with an adapter is lora_linear (float32 weights).
  nn::Linear linear(in, out);
  nn::add_lora(linear, rank, 16.0, 0.0);
  CHECK(linear.lora->scaling == scaling);
  for (Tensor* t : {&linear.weight, &linear.lora->lora_A.weight, &linear.lora->lora_B.weight})
    *t = g.normal(t->shape());
  Tensor x32 = g.normal({3, in});
  CHECK(linear.forward(x32).to_vector<float>() ==
        nn::lora_linear(x32, linear.weight, linear.lora->lora_A.weight, linear.lora->lora_B.weight, scaling)
            .to_vector<float>());
}

TEST_CASE("gradcheck of an adapted linear in float64: x, W, A and B; with dropout the mask fixed") {
  Generator g(8);
  const int64_t in = 5, out = 4, rank = 2;
  std::vector<Tensor> inputs = {g.normal({3, in}, 0, 1, DType::Float64), g.normal({out, in}, 0, 1, DType::Float64),
                                g.normal({rank, in}, 0, 1, DType::Float64), g.normal({out, rank}, 0, 1, DType::Float64)};
  for (Tensor& t : inputs) t.set_requires_grad();
  auto plain = [](const std::vector<Tensor>& v) { return nn::lora_linear(v[0], v[1], v[2], v[3], 2.5); };
  GradcheckResult r = gradcheck(plain, inputs);
  CHECK_MESSAGE(r.ok, r.report);
  auto dropped = [](const std::vector<Tensor>& v) {
    Generator mask(4);  // the same state on every call: the same mask
    return nn::lora_linear(v[0], v[1], v[2], v[3], 2.5, 0.4, &mask);
  };
  r = gradcheck(dropped, inputs);
  CHECK_MESSAGE(r.ok, r.report);
  // A transposed (non-contiguous) x.
  std::vector<Tensor> strided = inputs;
  strided[0] = transpose(contiguous(transpose(inputs[0].detach(), 0, 1)), 0, 1).set_requires_grad();
  REQUIRE(!strided[0].is_contiguous());
  r = gradcheck(plain, strided);
  CHECK_MESSAGE(r.ok, r.report);
}

TEST_CASE("lora_linear shape and value errors name every shape") {
  Tensor x = zeros({2, 4}), w = zeros({3, 4});
  std::vector<ErrorCase> cases = {
      {"A's in", [&] { nn::lora_linear(x, w, zeros({2, 5}), zeros({3, 2}), 1.0); },
       {"lora_linear", "[3, 4]", "[2, 5]", "[3, 2]"}},
      {"B's out", [&] { nn::lora_linear(x, w, zeros({2, 4}), zeros({4, 2}), 1.0); }, {"lora_linear", "[4, 2]"}},
      {"ranks differ", [&] { nn::lora_linear(x, w, zeros({2, 4}), zeros({3, 1}), 1.0); }, {"lora_linear", "[3, 1]"}},
      {"x", [&] { nn::lora_linear(zeros({2, 5}), w, zeros({2, 4}), zeros({3, 2}), 1.0); }, {"linear", "[2, 5]"}},
      {"rank 0", [&] { nn::Linear l(4, 3); nn::add_lora(l, 0, 0, 0); }, {"rank = 0"}},
      {"alpha < 0", [&] { nn::Linear l(4, 3); nn::add_lora(l, 2, -1, 0); }, {"alpha = -1"}},
      {"dropout 1", [&] { nn::Linear l(4, 3); nn::add_lora(l, 2, 0, 1.0); }, {"dropout = 1", "[0, 1)"}},
      {"twice", [&] { nn::Linear l(4, 3); nn::add_lora(l, 2, 0, 0); nn::add_lora(l, 2, 0, 0); }, {"already"}},
      {"merge without", [&] { nn::Linear l(4, 3); nn::merge_lora(l); }, {"no LoRA adapter"}},
  };
  for (const ErrorCase& c : cases) check_error_case(c);
}

// ---- adapters on a HydraTransformer ----

TEST_CASE("add_lora_adapters: names, shapes, A's range, B zero, own slab; a fresh adapter changes no logit") {
  auto model = small_config().build("cpu", 1);
  const Tensor ids = sample_ids();
  const std::vector<float> before = logits_of(*model, ids);
  std::map<std::string, const void*> base_data;
  for (auto& [name, t] : model->named_parameters()) base_data[name] = t->raw_data();
  const Tensor base_w1 = model->heads[0]->blocks[0]->feed_forward.w1.weight;

  Generator init(7);
  const std::vector<std::string> names = add_lora_adapters(*model, lora_config(4), {0, 2}, init);
  std::vector<std::string> want;
  for (const std::string& p : feed_forward_paths({0, 2})) {
    want.push_back(p + ".lora_A.weight");
    want.push_back(p + ".lora_B.weight");
  }
  CHECK(names == want);
  // The same names, in the same order, among the model's parameters.
  std::vector<std::string> listed;
  for (auto& [name, t] : model->named_parameters())
    if (is_lora_parameter(name)) listed.push_back(name);
  CHECK(listed == want);
  CHECK(model->named_parameters().size() == base_data.size() + want.size());

  // Shapes, values, flags; the base parameters are where they were (no reallocation).
  const Tensor& a0 = model->heads[0]->blocks[0]->feed_forward.w1.lora->lora_A.weight;
  for (auto& named : model->named_parameters()) {
    const std::string& name = named.first;
    Tensor* t = named.second;
    INFO(name);
    if (!is_lora_parameter(name)) {
      CHECK(t->raw_data() == base_data.at(name));
      CHECK(t->requires_grad());  // untouched: trainable from the start; freezing the base is the trainer's call
      CHECK(!t->shares_storage_with(a0));
      continue;
    }
    CHECK(t->requires_grad());
    CHECK(t->shares_storage_with(a0));  // one adapter slab
    CHECK(reinterpret_cast<uintptr_t>(t->raw_data()) % 64 == 0);
    const std::string linear = name.substr(0, name.size() - std::string(".lora_A.weight").size());
    const bool is_w2 = linear.ends_with("w2");
    const int64_t in = is_w2 ? 24 : 16, out = is_w2 ? 16 : 24;
    if (name.ends_with(".lora_B.weight")) {
      CHECK(t->shape() == Shape{out, 4});
      for (float v : t->to_vector<float>()) CHECK(v == 0.0f);
    } else {
      CHECK(t->shape() == Shape{4, in});
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      double lo = 1, hi = -1;
      for (float v : t->to_vector<float>()) {
        lo = std::min<double>(lo, v);
        hi = std::max<double>(hi, v);
      }
      CHECK(lo >= -bound);
      CHECK(hi <= bound);
      CHECK(hi - lo > 0.5 * bound);  // drawn, not constant
    }
  }
  CHECK(init.offset() == 4 * (4 * 16 + 4 * 24 + 4 * 16));  // A of w1, w2, w3 in 2 heads x 2 blocks
  // B = 0: every logit bit-identical to the base model's.
  CHECK(logits_of(*model, ids) == before);
  CHECK(model->heads[0]->blocks[0]->feed_forward.w1.weight.raw_data() == base_w1.raw_data());
  const std::optional<LoraInfo> info = lora_info(*model);
  REQUIRE(info);
  CHECK(info->config.rank == 4);
  CHECK(info->config.alpha == 8.0);  // default 2 · rank
  CHECK(info->config.scaling() == 2.0);
  CHECK(info->config.targets == std::vector<std::string>{"w1", "w2", "w3"});
  CHECK(info->linears == feed_forward_paths({0, 2}));
  CHECK(info->heads == std::vector<int64_t>{0, 2});
  CHECK(info->num_params == 4 * (4 * 16 + 24 * 4 + 4 * 24 + 16 * 4 + 4 * 16 + 24 * 4));
  CHECK(model->num_params() == small_config().num_params() + info->num_params);
}

TEST_CASE("adapters are drawn reproducibly from the init generator, each linear its own draw") {
  auto draw = [](uint64_t seed) {
    auto model = small_config().build("cpu", 1);
    Generator init(seed);
    add_lora_adapters(*model, lora_config(2), {1}, init);
    return lora_state_dict(*model);
  };
  const auto a = draw(5), b = draw(5), c = draw(6);
  for (const auto& [name, t] : a) {
    CHECK(t.to_vector<float>() == b.at(name).to_vector<float>());
    if (name.ends_with("lora_A.weight")) CHECK(t.to_vector<float>() != c.at(name).to_vector<float>());
  }
  CHECK(a.at("heads.1.blocks.0.feed_forward.w1.lora_A.weight").to_vector<float>() !=
        a.at("heads.1.blocks.1.feed_forward.w1.lora_A.weight").to_vector<float>());
}

TEST_CASE("an adapted head = base + scaling · B A x on its linears; other heads bit-identical") {
  auto base = small_config().build("cpu", 1);
  auto model = adapted_model(1);
  const Tensor ids = sample_ids();
  NoGradGuard no_grad;
  const Tensor lb = base->forward(ids), la = model->forward(ids);  // (3, B, T, V)
  for (int64_t k = 0; k < 3; ++k) {
    const double d = max_abs_diff(select(la, 0, k).to_vector<float>(), select(lb, 0, k).to_vector<float>());
    INFO("head ", k);
    if (k == 1) CHECK(d == 0.0);
    else CHECK(d > 1e-3);  // the random B visibly changes the adapted heads
  }
  // One adapted linear on its own, against float64 primitives.
  nn::Linear& w2 = model->heads[2]->blocks[1]->feed_forward.w2;
  Tensor x = Generator(4).normal({3, 24});
  auto f64 = [](const Tensor& t) { return cast(t, DType::Float64); };
  Tensor want = nn::lora_linear_reference(f64(x), f64(w2.weight), f64(w2.lora->lora_A.weight),
                                          f64(w2.lora->lora_B.weight), w2.lora->scaling);
  CHECK(max_abs_diff(w2.forward(x).to_vector<float>(), cast(want, DType::Float32).to_vector<float>()) < 1e-5);
}

TEST_CASE("target matching: own names inside the trained heads, dotted globs over module paths") {
  auto model = small_config().build("meta");
  CHECK(resolve_lora_targets(*model, {"w1"}, {1}) ==
        std::vector<std::string>{"heads.1.blocks.0.feed_forward.w1", "heads.1.blocks.1.feed_forward.w1"});
  // "w_out" is the attention output inside the heads, never the shared lm_head's w_out.
  CHECK(resolve_lora_targets(*model, {"w_out"}, {0}) ==
        std::vector<std::string>{"heads.0.blocks.0.attention.w_out", "heads.0.blocks.1.attention.w_out"});
  CHECK(resolve_lora_targets(*model, {"w_*"}, {2}).size() == 8);  // w_q, w_k, w_v, w_out in two blocks
  CHECK(resolve_lora_targets(*model, {"heads.2.blocks.1.attention.w_q"}, {2}) ==
        std::vector<std::string>{"heads.2.blocks.1.attention.w_q"});
  // Overlapping patterns select each linear once, in module order.
  CHECK(resolve_lora_targets(*model, {"heads.0.blocks.*.feed_forward.w3", "w3", "w1"}, {0}) ==
        std::vector<std::string>{"heads.0.blocks.0.feed_forward.w1", "heads.0.blocks.0.feed_forward.w3",
                                 "heads.0.blocks.1.feed_forward.w1", "heads.0.blocks.1.feed_forward.w3"});
  CHECK(resolve_lora_targets(*model, {"heads.*.blocks.0.feed_forward.w2"}, {0, 1, 2}).size() == 3);
  // A meta model gets meta adapters: counted, not allocated.
  Generator init(0);
  add_lora_adapters(*model, lora_config(2, {"w1"}), {0}, init);
  CHECK(init.offset() == 0);
  CHECK(lora_info(*model)->num_params == 2 * (2 * 16 + 24 * 2));
}

TEST_CASE("target matching errors: trunk, lm_head, untrained head, nothing matched, bad heads, bad config") {
  auto model = small_config().build("cpu", 1);
  Generator init(0);
  auto add = [&](std::vector<std::string> targets, std::vector<int64_t> heads) {
    add_lora_adapters(*model, lora_config(2, std::move(targets)), heads, init);
  };
  std::vector<ErrorCase> cases = {
      {"trunk", [&] { add({"trunk.blocks.0.feed_forward.w1"}, {0}); },
       {"'trunk.blocks.0.feed_forward.w1'", "the trunk", "change every head"}},
      {"trunk by glob", [&] { add({"*.w_out"}, {0}); }, {"'trunk.blocks.0.attention.w_out'", "the trunk"}},
      {"lm_head", [&] { add({"lm_head.w_out"}, {0}); }, {"'lm_head.w_out'", "the shared lm_head"}},
      {"untrained head", [&] { add({"heads.1.blocks.0.feed_forward.w1"}, {0, 2}); },
       {"'heads.1.blocks.0.feed_forward.w1'", "head 1, which is not trained", "trained heads: 0, 2"}},
      {"untrained head by glob", [&] { add({"heads.*.blocks.0.feed_forward.w1"}, {0, 2}); }, {"head 1"}},
      {"no own name", [&] { add({"w9"}, {0}); }, {"'w9'", "matches no linear in the trained heads"}},
      {"no path", [&] { add({"heads.0.blocks.7.feed_forward.w1"}, {0}); }, {"matches no linear", "module paths"}},
      {"parameter name", [&] { add({"heads.0.blocks.0.feed_forward.w1.weight"}, {0}); }, {"drop '.weight'"}},
      {"a module that is not a linear", [&] { add({"heads.0.blocks.0.attention_norm"}, {0}); }, {"matches no linear"}},
      {"no heads", [&] { add({"w1"}, {}); }, {"trained heads is empty"}},
      {"head out of range", [&] { add({"w1"}, {3}); }, {"trained head 3", "3 heads"}},
      {"head twice", [&] { add({"w1"}, {1, 1}); }, {"trained head 1 is listed twice"}},
      {"no targets", [&] { add({}, {0}); }, {"targets is empty"}},
      {"empty pattern", [&] { add({"w1", ""}, {0}); }, {"empty pattern"}},
      {"rank 0", [&] { add_lora_adapters(*model, lora_config(0), {0}, init); }, {"rank = 0"}},
      {"dropout 1", [&] { add_lora_adapters(*model, lora_config(2, {"w1"}, 0, 1.0), {0}, init); }, {"dropout = 1"}},
      {"alpha nan", [&] { add_lora_adapters(*model, lora_config(2, {"w1"}, std::nan("")), {0}, init); }, {"alpha"}},
  };
  for (const ErrorCase& c : cases) check_error_case(c);
  // Nothing was added by a refused call, and the generator did not move.
  CHECK(!has_lora_adapters(*model));
  CHECK(init.offset() == 0);
  add({"w1"}, {0});
  check_error_case({"twice", [&] { add({"w2"}, {1}); }, {"already has LoRA adapters"}});
}

TEST_CASE("set_only_lora_trainable leaves exactly the adapters trainable; backward reaches only them") {
  auto model = adapted_model();
  model->set_trainable("*", true);
  CHECK(set_only_lora_trainable(*model) == 24);
  Tensor loss = sum(model->forward(sample_ids()));
  loss.backward();
  for (auto& named : model->named_parameters()) {
    const std::string& name = named.first;
    Tensor* t = named.second;
    INFO(name);
    CHECK(t->requires_grad() == is_lora_parameter(name));
    CHECK(t->grad().defined() == is_lora_parameter(name));
  }
  auto plain = small_config().build("cpu", 1);
  check_error_case({"none", [&] { set_only_lora_trainable(*plain); }, {"no LoRA adapters"}});
}

TEST_CASE("with the training engine: only the adapters get gradient slots, decay and updates; the base stays bit-identical") {
  auto model = small_config().build("cpu", 1);
  Generator init(7), dropout_gen(8);
  nn::LoraConfig config = lora_config(4, {"w1", "w2", "w3"}, 0, 0.1);
  const std::vector<std::string> names = add_lora_adapters(*model, config, {0, 2}, init);
  set_only_lora_trainable(*model);
  nn::set_lora_training(*model, &dropout_gen);
  const nn::StateDict base_before = [&] {
    nn::StateDict copy;
    for (const auto& [name, t] : base_state_dict(*model)) copy[name] = clone(t);
    return copy;
  }();
  train::TrainableParameters params(*model);
  std::vector<std::string> listed;
  for (const train::TrainableParameter& p : params.list()) {
    listed.push_back(p.name);
    CHECK(p.weight_decay);  // LoRA matrices are 2-D weights: decayed
  }
  CHECK(listed == names);
  train::Optimizer adamw({}, params);
  const Tensor ids = sample_ids(), targets = Generator(9).randint({2, 5}, 0, 40);
  std::vector<double> losses;
  for (int step = 0; step < 5; ++step) {
    params.zero_grad();
    HydraLoss l = hydra_loss(model->forward(ids, std::nullopt, std::vector<int64_t>{0, 2}), targets);
    l.loss.backward();
    losses.push_back(l.loss.item<double>());
    adamw.step(1e-2);
  }
  CHECK(losses.back() < losses.front());  // the adapters learn the batch
  for (const auto& entry : base_state_dict(*model)) {
    const std::string& name = entry.first;
    const Tensor& t = entry.second;
    INFO(name);
    CHECK(t.to_vector<float>() == base_before.at(name).to_vector<float>());
  }
  CHECK(max_abs_diff(model->heads[0]->blocks[0]->feed_forward.w2.lora->lora_B.weight.to_vector<float>(),
                     std::vector<float>(16 * 4, 0.0f)) > 0);
}

// ---- dropout inside the adapters ----

TEST_CASE("adapter dropout: only while training, only on the adapter input, from the trainer's generator") {
  auto model = small_config().build("cpu", 1);
  Generator init(3);
  add_lora_adapters(*model, lora_config(4, {"w1", "w2", "w3"}, 0, 0.5), {0, 2}, init);
  const Tensor ids = sample_ids();
  const std::vector<float> base = logits_of(*model, ids);
  Generator dropout_gen(99);
  CHECK(nn::set_lora_training(*model, &dropout_gen) == 12);
  // B = 0: dropout never touches the base product, so even in training the logits are the base ones.
  CHECK(logits_of(*model, ids) == base);
  CHECK(dropout_gen.offset() > 0);  // but the masks were drawn
  randomize_lora_B(*model, 4);
  nn::set_lora_training(*model, nullptr);
  const std::vector<float> eval = logits_of(*model, ids);
  CHECK(logits_of(*model, ids) == eval);  // evaluation: no randomness
  dropout_gen.set_state(99, 0);
  nn::set_lora_training(*model, &dropout_gen);
  const std::vector<float> train1 = logits_of(*model, ids);
  const uint64_t used = dropout_gen.offset();
  // Heads 0 and 2, two blocks each: w1 and w3 see (B, T, C) inputs and w2 a (B, T, F) input.
  CHECK(used == 2 * 2 * (2 * 10 * 16 + 10 * 24));
  const std::vector<float> train2 = logits_of(*model, ids);
  CHECK(train1 != eval);
  CHECK(train2 != train1);  // the stream moved on
  dropout_gen.set_state(99, 0);
  CHECK(logits_of(*model, ids) == train1);  // the same state: the same masks
  // The dropped-out adapter of one linear, against the formula with the mask rebuilt by the kernel.
  nn::Linear& w1 = model->heads[0]->blocks[0]->feed_forward.w1;
  Tensor x = Generator(6).normal({4, 16});
  Generator g(5);
  w1.lora->dropout_gen = &g;
  Tensor got = w1.forward(x);
  Tensor xd = kernels::dropout_raw(x, 0.5, Generator(5));
  Tensor want = add(nn::linear(x, w1.weight),
                    mul_scalar(nn::linear(nn::linear(xd, w1.lora->lora_A.weight), w1.lora->lora_B.weight), 2.0));
  CHECK(got.to_vector<float>() == want.to_vector<float>());
}

TEST_CASE("adapter dropout without a graph: a few rows per head still draw the masks in head order") {
  // A forward without a graph and with few rows per head may run the heads side by side; heads whose
  // adapters draw dropout masks from the one generator must not, or the draws interleave.
  hydra::test::ScopedThreads scoped(2);
  auto model = small_config().build("cpu", 3);
  Generator init(3);
  add_lora_adapters(*model, lora_config(4, {"w1", "w2", "w3"}, 0, 0.5), {0, 1, 2}, init);
  randomize_lora_B(*model, 4);
  const Tensor ids = sample_ids(1, 4);  // 4 rows per head: the few-row path
  Generator gen(99);
  nn::set_lora_training(*model, &gen);
  std::vector<float> one_at_a_time;
  {
    NoGradGuard no_grad;
    for (int64_t k = 0; k < 3; ++k) {
      std::vector<float> v = model->forward(ids, std::nullopt, std::vector<int64_t>{k}).to_vector<float>();
      one_at_a_time.insert(one_at_a_time.end(), v.begin(), v.end());
    }
  }
  const uint64_t used = gen.offset();
  for (int repeat = 0; repeat < 100; ++repeat) {
    gen.set_state(99, 0);
    REQUIRE(logits_of(*model, ids) == one_at_a_time);
    REQUIRE(gen.offset() == used);
  }
}

TEST_CASE("an adapted model with dropout trains bit-identically at 1 and 2 threads") {
  // Big enough that the GEMMs and the dropout kernel split across threads (B·T·C > 4096).
  auto run = [](int threads) {
    hydra::test::ScopedThreads scoped(threads);
    auto model = small_config(64, 96).build("cpu", 2);
    Generator init(1), dropout_gen(2);
    add_lora_adapters(*model, lora_config(8, {"w1", "w2", "w3", "w_q"}, 0, 0.1), {0, 1}, init);
    randomize_lora_B(*model, 3, 0.05);
    nn::set_lora_training(*model, &dropout_gen);
    Tensor ids = Generator(4).randint({4, 32}, 0, 40);
    Tensor loss = sum(model->forward(ids, std::nullopt, std::vector<int64_t>{0, 1}));
    loss.backward();
    std::vector<float> out{loss.item<float>()};
    for (auto& [name, t] : model->named_parameters())
      if (is_lora_parameter(name)) {
        auto g = t->grad().to_vector<float>();
        out.insert(out.end(), g.begin(), g.end());
      }
    out.push_back(static_cast<float>(dropout_gen.offset()));
    return out;
  };
  const auto one = run(1), two = run(2);
  REQUIRE(one.size() > 1000);
  CHECK(one == two);
}

// ---- merging ----

TEST_CASE("merge: W + scaling · B A rounded once; merged and adapted logits agree within 1e-5") {
  auto model = adapted_model();
  const Tensor ids = sample_ids();
  const std::vector<float> adapted = logits_of(*model, ids);
  nn::Linear& w3 = model->heads[2]->blocks[0]->feed_forward.w3;
  const std::vector<double> w = w3.weight.to_vector<double>(), a = w3.lora->lora_A.weight.to_vector<double>(),
                            b = w3.lora->lora_B.weight.to_vector<double>();
  const std::vector<float> untouched = model->heads[1]->blocks[0]->feed_forward.w3.weight.to_vector<float>();
  const void* w3_data = w3.weight.raw_data();

  CHECK(merge_lora_adapters(*model) == 12);
  CHECK(!has_lora_adapters(*model));
  CHECK(!lora_info(*model));
  CHECK(model->lora_targets.empty());
  // The parameter set is a plain model's again.
  std::vector<std::string> names, plain_names;
  for (auto& [name, t] : model->named_parameters()) names.push_back(name);
  for (auto& [name, t] : small_config().build("meta")->named_parameters()) plain_names.push_back(name);
  CHECK(names == plain_names);
  // W3 of head 2 is exactly the float32 nearest to W + 2 · B A (computed here in float64); in place.
  CHECK(w3.weight.raw_data() == w3_data);
  const std::vector<float> merged = w3.weight.to_vector<float>();
  for (int64_t o = 0; o < 24; ++o)
    for (int64_t i = 0; i < 16; ++i) {
      double delta = 0;
      for (int64_t k = 0; k < 4; ++k) delta += b[o * 4 + k] * a[k * 16 + i];
      CHECK(merged[o * 16 + i] == static_cast<float>(w[o * 16 + i] + 2.0 * delta));
    }
  CHECK(model->heads[1]->blocks[0]->feed_forward.w3.weight.to_vector<float>() == untouched);
  const double d = max_abs_diff(logits_of(*model, ids), adapted);
  MESSAGE("merged vs adapted logits: max |diff| = ", d);
  CHECK(d < 1e-5);
}

// ---- files ----

TEST_CASE("save -> load: base weights as before, adapters in their own files, bit-identical logits") {
  TempDir tmp("lora");
  auto model = adapted_model();
  model->lora_targets = {"w1", "w2", "w3"};
  const Tensor ids = sample_ids();
  const std::vector<float> logits = logits_of(*model, ids);
  const std::string dir = tmp.file("m");
  save_model_dir(dir, *model);
  for (const char* f : {"config.json", "model.safetensors", "adapters.safetensors", "adapter_config.json"})
    CHECK(fs::exists(fs::path(dir) / f));

  // model.safetensors: exactly the base names (what a plain model saves); adapters.safetensors: the rest.
  const auto base = io::load_safetensors(dir + "/model.safetensors");
  std::map<std::string, std::string> meta;
  const auto adapters = io::load_safetensors(dir + "/adapters.safetensors", &meta);
  CHECK(meta.at("format") == "hydra-lora");
  std::vector<std::string> base_names, plain_names, adapter_names;
  for (const auto& [name, t] : base) base_names.push_back(name);
  for (const auto& [name, t] : small_config().build("meta")->state_dict()) plain_names.push_back(name);
  for (const auto& [name, t] : adapters) adapter_names.push_back(name);
  CHECK(base_names == plain_names);
  CHECK(adapter_names.size() == 24);
  for (const auto& name : adapter_names) CHECK(is_lora_parameter(name));
  const nlohmann::json config = nlohmann::json::parse(test::read_bytes(dir + "/adapter_config.json"));
  CHECK(config == nlohmann::json{{"format", "hydra-lora"},
                                 {"format_version", 1},
                                 {"rank", 4},
                                 {"alpha", 8.0},
                                 {"dropout", 0.0},
                                 {"targets", {"w1", "w2", "w3"}},
                                 {"linears", feed_forward_paths({0, 2})}});

  auto loaded = load_model_dir(dir);
  CHECK(logits_of(*loaded, ids) == logits);
  const auto info = lora_info(*loaded);
  REQUIRE(info);
  CHECK(info->linears == feed_forward_paths({0, 2}));
  CHECK(info->config.scaling() == 2.0);
  // Loaded: trainable, as every parameter of a fresh model (freezing is the trainer's call).
  for (auto& [name, t] : loaded->named_parameters()) CHECK(t->requires_grad());
  // Saved again, the files are byte-identical.
  save_model_dir(tmp.file("again"), *loaded);
  for (const char* f : {"config.json", "model.safetensors", "adapters.safetensors", "adapter_config.json"})
    CHECK(test::read_bytes(dir + "/" + f) == test::read_bytes(tmp.file("again") + "/" + f));
  // A model without adapters writes no adapter files.
  save_model_dir(tmp.file("plain"), *small_config().build("cpu", 1));
  CHECK(!fs::exists(tmp.file("plain") + "/adapter_config.json"));
  CHECK(!fs::exists(tmp.file("plain") + "/adapters.safetensors"));
  CHECK(!has_lora_adapters(*load_model_dir(tmp.file("plain"))));
}

TEST_CASE("a checkpoint of an adapted model keeps the adapters, digested by its manifest") {
  TempDir tmp("lora-ckpt");
  auto model = adapted_model();
  const Tensor ids = sample_ids();
  train::TrainingState state;
  state.step = 3;
  state.rng["dropout"] = {99, 1234};
  const std::string dir = tmp.file("ckpt");
  train::save_checkpoint(dir, *model, state, {});
  const train::Checkpoint c = train::load_checkpoint(dir);
  CHECK(c.manifest.files.count("adapters.safetensors"));
  CHECK(c.manifest.files.count("adapter_config.json"));
  CHECK(logits_of(*c.model, ids) == logits_of(*model, ids));
  // A flipped byte in the adapter weights is caught by the digest.
  std::string bytes = test::read_bytes(dir + "/adapters.safetensors");
  bytes[bytes.size() - 3] ^= 0x40;
  test::write_bytes(dir + "/adapters.safetensors", bytes);
  check_error_case({"corrupt adapters", [&] { train::load_checkpoint(dir); }, {"adapters.safetensors", "corrupt"}});
}

namespace {

// A saved adapted model, and ways to break one of its adapter files.
struct BrokenDir {
  TempDir tmp{"lora-bad"};
  std::string dir = tmp.file("m");
  BrokenDir() { save_model_dir(dir, *adapted_model()); }
  std::string config_path() const { return dir + "/adapter_config.json"; }
  std::string weights_path() const { return dir + "/adapters.safetensors"; }
  nlohmann::json config() const { return nlohmann::json::parse(test::read_bytes(config_path())); }
  void write_config(const nlohmann::json& j) const { test::write_bytes(config_path(), j.dump(2)); }
  std::map<std::string, Tensor> weights() const {
    std::map<std::string, Tensor> out;
    for (const auto& [name, t] : io::load_safetensors(weights_path())) out[name] = clone(t);
    return out;
  }
  void write_weights(const std::map<std::string, Tensor>& w) const {
    fs::remove(weights_path());
    io::save_safetensors(weights_path(), w);
  }
};

constexpr const char* kW1A = "heads.0.blocks.0.feed_forward.w1.lora_A.weight";

using Damage = std::function<void(const BrokenDir&)>;

// Replaces (or adds) one tensor of adapters.safetensors.
Damage set_tensor(const std::string& name, const Tensor& value) {
  return [=](const BrokenDir& b) {
    auto w = b.weights();
    w[name] = value;
    b.write_weights(w);
  };
}

// Applies `edit` to adapter_config.json; set_field sets one field.
Damage edit_config(const std::function<void(nlohmann::json&)>& edit) {
  return [=](const BrokenDir& b) {
    nlohmann::json j = b.config();
    edit(j);
    b.write_config(j);
  };
}
Damage set_field(const std::string& key, const nlohmann::json& value) {
  return edit_config([=](nlohmann::json& j) { j[key] = value; });
}

}  // namespace

TEST_CASE("adapter file errors name the file and the tensor or field") {
  using json = nlohmann::json;
  struct Case {
    std::string name;
    Damage damage;
    std::vector<std::string> must_contain;
  };
  const std::string w2_B = "heads.2.blocks.1.feed_forward.w2.lora_B.weight";
  const std::string other_head = "heads.1.blocks.0.feed_forward.w1.lora_A.weight";
  const std::vector<Case> cases = {
      {"weights missing", [](const BrokenDir& b) { fs::remove(b.weights_path()); },
       {"adapter_config.json is present", "adapters.safetensors is missing"}},
      {"config missing", [](const BrokenDir& b) { fs::remove(b.config_path()); },
       {"adapters.safetensors", "without adapter_config.json"}},
      {"tensor missing",
       [](const BrokenDir& b) {
         auto w = b.weights();
         w.erase(kW1A);
         b.write_weights(w);
       },
       {"adapters.safetensors", "missing adapter tensor", kW1A}},
      {"extra tensor", set_tensor(other_head, zeros({4, 16})), {"adapters.safetensors", "unexpected tensor", other_head}},
      {"wrong shape (rank)", set_tensor(kW1A, zeros({3, 16})),
       {"adapters.safetensors", kW1A, "[3, 16]", "rank 4", "need [4, 16]"}},
      {"wrong shape (transposed)", set_tensor(w2_B, zeros({4, 16})), {w2_B, "[4, 16]", "need [16, 4]"}},
      {"integer tensor", set_tensor(kW1A, zeros({4, 16}, DType::Int64)), {kW1A, "int64", "F32"}},
      {"linear that does not exist",
       edit_config([](json& j) { j["linears"].push_back("heads.0.blocks.5.feed_forward.w1"); }),
       {"adapter_config.json", "'heads.0.blocks.5.feed_forward.w1'", "not a linear of this model"}},
      {"linear in the trunk", edit_config([](json& j) { j["linears"].push_back("trunk.blocks.0.feed_forward.w1"); }),
       {"adapter_config.json", "'trunk.blocks.0.feed_forward.w1'", "the trunk"}},
      {"linears disagree with targets", edit_config([](json& j) { j["linears"].erase(j["linears"].begin()); }),
       {"adapter_config.json", "'targets' [w1, w2, w3] select 12 linears", "'linears' lists 11"}},
      {"target in an untrained head",
       edit_config([](json& j) { j["targets"].push_back("heads.1.blocks.0.attention.w_q"); }),
       {"adapter_config.json", "head 1, which is not trained"}},
      {"rank disagrees with the tensors", set_field("rank", 2), {"adapters.safetensors", "rank 2", "need [2, 16]"}},
      {"wrong format", set_field("format", "peft"), {"adapter_config.json", "'format'", "hydra-lora"}},
      {"future version", set_field("format_version", 2), {"adapter_config.json", "format_version 2"}},
      {"rank 0", set_field("rank", 0), {"adapter_config.json", "'rank'", "got 0"}},
      {"rank a string", set_field("rank", "4"), {"adapter_config.json", "'rank'", "\"4\""}},
      {"alpha 0", set_field("alpha", 0), {"adapter_config.json", "'alpha'", "> 0"}},
      {"dropout 1", set_field("dropout", 1.0), {"adapter_config.json", "'dropout'", "[0, 1)"}},
      {"targets empty", set_field("targets", json::array()), {"adapter_config.json", "'targets'", "non-empty"}},
      {"linears not strings", set_field("linears", {1, 2}), {"adapter_config.json", "'linears'", "strings"}},
      {"linear twice", edit_config([](json& j) { j["linears"].push_back(j["linears"][0]); }),
       {"adapter_config.json", "lists 'heads.0.blocks.0.feed_forward.w1' twice"}},
      {"unknown field", set_field("lora_rank", 4), {"adapter_config.json", "unknown field 'lora_rank'"}},
      {"missing field", edit_config([](json& j) { j.erase("dropout"); }),
       {"adapter_config.json", "missing field 'dropout'"}},
      {"not an object", [](const BrokenDir& b) { b.write_config(json::array({1})); },
       {"adapter_config.json", "expected a JSON object"}},
      {"not JSON", [](const BrokenDir& b) { test::write_bytes(b.config_path(), "{\"rank\": 4,"); },
       {"adapter_config.json", "not valid JSON"}},
      {"garbage weights", [](const BrokenDir& b) { test::write_bytes(b.weights_path(), "not a safetensors file"); },
       {"adapters.safetensors"}},
  };
  for (const Case& c : cases) {
    BrokenDir b;
    c.damage(b);
    check_error_case({c.name, [&] { load_model_dir(b.dir); }, c.must_contain});
  }
}

TEST_CASE("a checkpoint manifest listing one adapter file without the other is refused") {
  TempDir tmp("lora-manifest");
  train::CheckpointManifest m;
  for (const char* f : {"config.json", "model.safetensors", "training_state.bin.zst", "adapter_config.json"})
    m.files[f] = {std::string(64, 'a'), 1};
  const std::string text = train::checkpoint_manifest_text(m);
  check_error_case({"half the adapters", [&] { train::parse_checkpoint_manifest(text, "m.json"); },
                    {"m.json", "adapter_config.json", "adapters.safetensors", "without the other"}});
  m.files["adapters.safetensors"] = {std::string(64, 'b'), 2};
  CHECK(train::parse_checkpoint_manifest(train::checkpoint_manifest_text(m), "m.json").files.size() == 5);
}

TEST_CASE("the adapter_config fuzz seeds are valid configs for the tiny model") {
  const fs::path seeds = hydra::test::source_path("tests/fuzz/corpus/adapter_config");
  auto model = HydraTransformerConfig::preset("tiny").build("meta");
  int64_t n = 0;
  for (const auto& e : fs::directory_iterator(seeds)) {
    INFO(e.path().string());
    const LoraInfo info = parse_adapter_config(io::read_json_file(e.path().string(), "LoRA adapter config", kMaxConfigBytes), e.path().string());
    CHECK(check_adapter_config(*model, info, e.path().string()).size() == info.linears.size());
    ++n;
  }
  CHECK(n == 2);
}
