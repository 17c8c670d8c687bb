// The HydraTransformer against PyTorch (tests/fixtures, written by scripts/make_fixtures.py), and its
// structural invariants: every call of the Hydra contract (docs/model.md), the loss and every parameter's
// gradient, per-layer outputs, load_olmo_state, KV-cached decoding, the trunk running once, meta builds,
// initialisation.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <sstream>

#include "autograd/ops.h"
#include "hydra/combine.h"
#include "hydra/hydra_transformer.h"
#include "hydra/loss.h"
#include "io/safetensors.h"
#include "nn/cross_entropy.h"
#include "support/fixtures.h"
#include "support/op_harness.h"
#include "tensor/allocator.h"

using namespace hydra;
using hydra::test::check_error_case;
using hydra::test::fixture_path;

namespace {

struct Fixture {
  std::map<std::string, Tensor> tensors;
  HydraTransformerConfig config;

  const Tensor& at(const std::string& name) const {
    auto it = tensors.find(name);
    REQUIRE_MESSAGE(it != tensors.end(), "fixture has no tensor '", name, "'");
    return it->second;
  }
  std::vector<int64_t> ints(const std::string& name) const { return at(name).to_vector<int64_t>(); }
};

Fixture load_fixture(const std::string& file) {
  Fixture f;
  std::map<std::string, std::string> meta;
  f.tensors = io::load_safetensors(fixture_path(file), &meta);
  nlohmann::json j = nlohmann::json::parse(meta.at("config"));
  j["format_version"] = kConfigFormatVersion;
  f.config = HydraTransformerConfig::from_json(j, file);
  return f;
}

// The model with the fixture's parameters (every name starting trunk./heads./lm_head.).
std::unique_ptr<HydraTransformer> load_model(const Fixture& f) {
  auto model = f.config.build("cpu");
  nn::StateDict state;
  for (const auto& [name, t] : f.tensors)
    if (name.starts_with("trunk.") || name.starts_with("heads.") || name.starts_with("lm_head.")) state[name] = t;
  model->load_state_dict(state);
  return model;
}

// got ≈ want within tol · max(1, max |want|); on failure prints the name, the max difference and the
// first mismatching index.
void expect_close(const std::string& name, const Tensor& got, const Tensor& want, double tol = 1e-5) {
  INFO("tensor '", name, "'");
  REQUIRE_MESSAGE(got.shape() == want.shape(), "shape ", shape_str(got.shape()), " vs expected ",
                  shape_str(want.shape()));
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double scale = 1, max_diff = 0;
  for (double v : w) scale = std::max(scale, std::abs(v));
  int64_t first_bad = -1;
  for (size_t i = 0; i < g.size(); ++i) {
    double d = std::abs(g[i] - w[i]);
    if (!(d <= tol * scale) && first_bad < 0) first_bad = static_cast<int64_t>(i);
    if (d > max_diff || std::isnan(d)) max_diff = std::isnan(d) ? INFINITY : d;
  }
  std::ostringstream os;
  os << "max |diff| " << max_diff << " (allowed " << tol * scale << ")";
  if (first_bad >= 0) os << ", first mismatch at flat index " << first_bad << ": got " << g[first_bad] << ", want " << w[first_bad];
  CHECK_MESSAGE(first_bad < 0, os.str());
}

Tensor as_ids(const Tensor& t) { return t; }  // fixtures store ids as int64 already

}  // namespace

TEST_CASE("every call of the Hydra contract (docs/model.md) matches PyTorch") {
  for (const char* file : {"hydra_tiny_distinct.safetensors", "hydra_gqa.safetensors"}) {
    INFO("fixture ", std::string(file));
    Fixture f = load_fixture(file);
    auto model = load_model(f);
    const Tensor ids = as_ids(f.at("input_ids"));
    NoGradGuard no_grad;

    // Per-layer outputs.
    Tensor h = model->trunk.embeddings.forward(ids);
    expect_close("act.trunk.embeddings", h, f.at("act.trunk.embeddings"));
    for (size_t i = 0; i < model->trunk.blocks.size(); ++i) {
      h = model->trunk.blocks[i]->forward(h);
      expect_close("act.trunk.blocks." + std::to_string(i), h, f.at("act.trunk.blocks." + std::to_string(i)));
    }
    for (size_t k = 0; k < model->heads.size(); ++k) {
      Tensor y = h;
      for (size_t j = 0; j < model->heads[k]->blocks.size(); ++j) {
        y = model->heads[k]->blocks[j]->forward(y);
        std::string name = "act.heads." + std::to_string(k) + ".blocks." + std::to_string(j);
        expect_close(name, y, f.at(name));
      }
    }

    expect_close("forward.logits", model->forward(ids), f.at("forward.logits"));
    expect_close("forward_subset.logits", model->forward(ids, std::nullopt, f.ints("forward_subset.head_indices")),
                 f.at("forward_subset.logits"));
    expect_close("forward_last.logits", model->forward(ids, std::nullopt, std::nullopt, true), f.at("forward_last.logits"));
    expect_close("forward_residual.logits", model->forward(ids, f.at("residual")), f.at("forward_residual.logits"));
    for (bool last : {false, true}) {
      std::string p = last ? "residual_forward_last." : "residual_forward.";
      auto [logits, hidden] = model->residual_forward(ids, f.ints("residual_forward.hidden_head_indices"),
                                                      f.ints("residual_forward.head_indices"), last);
      expect_close(p + "logits", logits, f.at(p + "logits"));
      expect_close(p + "hidden", hidden, f.at(p + "hidden"));
    }
    Tensor logits = model->forward(ids);
    expect_close("combine.mean_logits", mean_logits(logits), f.at("combine.mean_logits"));
    expect_close("combine.poe_log_probs",
                 product_of_experts(logits, f.at("combine.poe_beta").to_vector<double>(),
                                    f.at("combine.poe_temperature").item<double>()),
                 f.at("combine.poe_log_probs"));
  }
}

TEST_CASE("the loss and every parameter's gradient match PyTorch") {
  for (const char* file : {"hydra_tiny_distinct.safetensors", "hydra_gqa.safetensors"}) {
    INFO("fixture ", std::string(file));
    Fixture f = load_fixture(file);
    auto model = load_model(f);
    Tensor loss = hydra_loss(model->forward(f.at("input_ids")), f.at("targets")).loss;
    expect_close("loss", loss, f.at("loss"));
    loss.backward();
    int64_t checked = 0;
    for (auto& entry : model->named_parameters()) {
      // (not a structured binding: clang 14 cannot capture one in doctest's message lambda)
      const std::string& name = entry.first;
      const Tensor* t = entry.second;
      REQUIRE_MESSAGE(t->grad().defined(), "no gradient for ", name);
      expect_close("grad." + name, t->grad(), f.at("grad." + name));
      ++checked;
    }
    CHECK(checked == static_cast<int64_t>(model->named_parameters().size()));
  }
}

TEST_CASE("load_olmo_state splits, pads and copies, and the result matches PyTorch") {
  Fixture f = load_fixture("hydra_tiny.safetensors");
  auto model = f.config.build("cpu");
  nn::StateDict olmo;
  for (const auto& [name, t] : f.tensors)
    if (name.starts_with("olmo.")) olmo[name.substr(5)] = t;
  HydraTransformer::load_olmo_state(*model, olmo, f.config.trunk_layers, f.config.base_config.vocab_size);
  // Padded rows are zero; every head holds the same weights, in its own memory.
  Tensor emb = model->trunk.embeddings.weight;
  const int64_t real = olmo.at("embeddings.weight").size(0);
  for (double v : narrow(emb, 0, real, emb.size(0) - real).to_vector<double>()) CHECK(v == 0.0);
  auto sd = model->state_dict();
  for (int64_t k = 1; k < f.config.n_heads; ++k) {
    std::string a = "heads.0.blocks.0.feed_forward.w1.weight", b = "heads." + std::to_string(k) + ".blocks.0.feed_forward.w1.weight";
    CHECK(sd.at(a).to_vector<float>() == sd.at(b).to_vector<float>());
    CHECK(sd.at(a).raw_data() != sd.at(b).raw_data());
  }
  NoGradGuard no_grad;
  expect_close("forward.logits", model->forward(f.at("input_ids")), f.at("forward.logits"));

  // Strictness: a missing tensor, an extra one, too many vocab rows.
  nn::StateDict missing = olmo;
  missing.erase("blocks.1.attention.w_q.weight");
  check_error_case({"missing", [&] { HydraTransformer::load_olmo_state(*model, missing, 2, 320); },
                    {"missing", "trunk.blocks.1.attention.w_q.weight"}});
  nn::StateDict extra = olmo;
  extra["blocks.9.attention.w_q.weight"] = olmo.at("blocks.1.attention.w_q.weight");
  check_error_case({"unexpected", [&] { HydraTransformer::load_olmo_state(*model, extra, 2, 320); }, {"unexpected"}});
  check_error_case({"too many rows", [&] { HydraTransformer::load_olmo_state(*model, olmo, 2, 100); },
                    {"embeddings.weight", "vocab_size 100"}});
}

TEST_CASE("KV-cached decoding reproduces the full forward") {
  Fixture f = load_fixture("hydra_tiny_distinct.safetensors");
  auto model = load_model(f);
  NoGradGuard no_grad;
  const Tensor ids = f.at("input_ids");
  const int64_t B = ids.size(0), T = ids.size(1);
  // The reference: full forwards before any cache exists (once a cache exists, every call uses it).
  const std::vector<HeadIndices> subsets = {HeadIndices{}, HeadIndices{std::vector<int64_t>{2, 0}}};
  std::vector<Tensor> fulls;
  for (const HeadIndices& heads : subsets) fulls.push_back(model->forward(ids, std::nullopt, heads));
  for (bool omit_last : {false, true})
    for (size_t s = 0; s < subsets.size(); ++s) {
      const HeadIndices& heads = subsets[s];
      INFO("omit_last ", omit_last, ", subset ", heads.has_value());
      if (omit_last && heads) continue;  // the uncached last head cannot decode incrementally
      const Tensor& full = fulls[s];  // shape: (n, B, T, V)
      model->init_kv_cache(B, 16, omit_last);
      // Prefill 4 tokens, then one at a time.
      std::vector<Tensor> steps{model->forward(narrow(ids, 1, 0, 4), std::nullopt, heads)};
      for (int64_t t = 4; t < T; ++t) steps.push_back(model->forward(narrow(ids, 1, t, 1), std::nullopt, heads));
      Tensor decoded = concat(steps, 2);
      if (!omit_last) {
        expect_close("decoded logits", decoded, full);
      } else {
        // Cached heads decode exactly; the cacheless last head only saw each step's tokens.
        const int64_t n = full.size(0);
        expect_close("decoded cached heads", narrow(decoded, 0, 0, n - 1), narrow(full, 0, 0, n - 1));
        // The cacheless head is skipped, not an error, by calls without omit_last.
        model->reset_kv_cache(false);
        model->rollback_kv_cache(1, false);
        model->sync_kv_cache(0, false);
      }
      // Roll back two tokens and decode them again: the same logits.
      if (!omit_last) {
        model->rollback_kv_cache(2);
        Tensor redo = model->forward(narrow(ids, 1, T - 2, 2), std::nullopt, heads);
        expect_close("re-decoded after rollback", redo, narrow(full, 2, T - 2, 2));
        model->sync_kv_cache(T - 1);
        Tensor last = model->forward(narrow(ids, 1, T - 1, 1), std::nullopt, heads);
        expect_close("re-decoded after sync", last, narrow(full, 2, T - 1, 1));
        model->reset_kv_cache();
        expect_close("after reset", model->forward(ids, std::nullopt, heads), full);
        model->reset_kv_cache();
      }
    }
  model->init_kv_cache(B, 8);
  model->forward(ids);
  check_error_case({"past max_seq_len", [&] { model->forward(narrow(ids, 1, 0, 2)); }, {"max_seq_len"}});
}

TEST_CASE("parameters start trainable: backward on a fresh model fills every gradient; NoGradGuard records nothing") {
  auto config = HydraTransformerConfig::preset("tiny");
  auto model = config.build("cpu", 2);
  Tensor ids = Generator(4).randint({1, 3}, 0, config.base_config.vocab_size);
  {
    NoGradGuard no_grad;  // the inference path: no graph, no gradients
    Tensor logits = model->forward(ids);
    CHECK(!logits.requires_grad());
    CHECK(logits.grad_fn() == nullptr);
  }
  Tensor loss = cross_entropy(model->forward(ids), full({config.n_heads, 1, 3}, 7, DType::Int64));
  loss.backward();
  for (auto& entry : model->named_parameters()) {
    const std::string& name = entry.first;
    const Tensor* t = entry.second;
    CHECK_MESSAGE(t->requires_grad(), name);
    REQUIRE_MESSAGE(t->grad().defined(), "no gradient for ", name);
    CHECK(t->grad().shape() == t->shape());
  }
  // Freezing by pattern: the trunk gets no gradient any more, the rest still does.
  for (auto& entry : model->named_parameters()) entry.second->zero_grad();
  model->set_trainable("trunk.*", false);
  cross_entropy(model->forward(ids), full({config.n_heads, 1, 3}, 7, DType::Int64)).backward();
  CHECK(!model->trunk.embeddings.weight.grad().defined());
  CHECK(model->lm_head.w_out.weight.grad().defined());
  CHECK(model->heads[2]->blocks[1]->feed_forward.w2.weight.grad().defined());
}

TEST_CASE("structure: trunk once per call, head selection errors, meta builds, initialisation") {
  auto config = HydraTransformerConfig::preset("tiny");
  auto model = config.build("cpu", 1);
  Tensor ids = Generator(3).randint({2, 5}, 0, config.base_config.vocab_size);
  NoGradGuard no_grad;
  int64_t before = model->trunk_calls();
  Tensor logits = model->forward(ids, std::nullopt, std::vector<int64_t>{0, 1, 2, 2});
  CHECK(model->trunk_calls() == before + 1);
  CHECK(logits.shape() == Shape{4, 2, 5, config.base_config.vocab_size});
  // A duplicated head gives the same logits twice (no cache).
  CHECK(select(logits, 0, 2).to_vector<float>() == select(logits, 0, 3).to_vector<float>());
  // Heads start different (each its own draw) and norms start at one.
  auto sd = model->state_dict();
  CHECK(sd.at("heads.0.blocks.0.attention.w_q.weight").to_vector<float>() !=
        sd.at("heads.1.blocks.0.attention.w_q.weight").to_vector<float>());
  for (float v : sd.at("heads.2.blocks.1.feed_forward_norm.weight").to_vector<float>()) CHECK(v == 1.0f);
  // Truncated at ±3 std = ±0.06, with the spread of a std-0.02 normal.
  std::vector<float> emb = sd.at("trunk.embeddings.weight").to_vector<float>();
  double max_abs = 0, sum_sq = 0;
  for (float v : emb) {
    max_abs = std::max(max_abs, static_cast<double>(std::abs(v)));
    sum_sq += static_cast<double>(v) * v;
  }
  CHECK(max_abs <= 0.06);
  CHECK(max_abs > 0.05);
  CHECK(std::sqrt(sum_sq / emb.size()) == doctest::Approx(0.0197).epsilon(0.02));
  // Same seed, same weights.
  CHECK(config.build("cpu", 1)->state_dict().at("lm_head.w_out.weight").to_vector<float>() ==
        sd.at("lm_head.w_out.weight").to_vector<float>());

  check_error_case({"empty", [&] { model->forward(ids, std::nullopt, std::vector<int64_t>{}); }, {"head_indices is empty"}});
  check_error_case({"range", [&] { model->forward(ids, std::nullopt, std::vector<int64_t>{3}); }, {"head index 3", "3 heads"}});
  check_error_case({"negative", [&] { model->forward(ids, std::nullopt, std::vector<int64_t>{-1}); }, {"head index -1"}});
  check_error_case({"residual", [&] { model->forward(ids, zeros({2, 4, 256})); }, {"residual shape [2, 4, 256]", "[2, 5, 256]"}});
  check_error_case({"hidden head", [&] { model->residual_forward(ids, {1}, std::vector<int64_t>{0, 2}); },
                    {"hidden head 1", "not among the selected"}});

  // A 7B Hydra on the meta device: counted exactly, no parameter memory.
  size_t in_use = allocator_stats().in_use_bytes;
  auto big = HydraTransformerConfig::from_olmo2_7B(5, 3).build("meta");
  CHECK(big->num_params() == 9'727'315'968LL);
  CHECK(big->is_meta());
  CHECK(allocator_stats().in_use_bytes == in_use);
  CHECK(HydraTransformerConfig::from_olmo2_1B(5, 3).build("meta")->num_params() == 2'290'321'408LL);
  CHECK(HydraTransformerConfig::from_olmo2_7B(10, 3).build("meta")->num_params() == 12'763'189'248LL);
}
