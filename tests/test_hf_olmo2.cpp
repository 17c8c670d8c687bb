// hydra/hf_olmo2: HuggingFace OLMo-2 checkpoints in and out. The HF fixture (tests/fixtures/hf_olmo2_tiny/,
// two shards + index, written by scripts/make_fixtures.py) converted to Hydra reproduces PyTorch's logits
// for every head; an exported head converts back bit-identically; every refusal of config.json and every
// naming fault has a byte-literal case with its message.
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "autograd/grad_mode.h"
#include "hydra/hf_olmo2.h"
#include "hydra/model_dir.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "io/safetensors_index.h"
#include "support/fixtures.h"
#include "support/op_harness.h"
#include "support/temp_dir.h"

using namespace hydra;
namespace fs = std::filesystem;

using test::read_bytes;
using test::TempDir;
using test::write_bytes;

namespace {

std::string fixture(const std::string& name) { return hydra::test::fixture_path(name); }

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

void expect_error(const std::string& name, const std::function<void()>& call, const std::vector<std::string>& parts) {
  test::check_error_case({name, call, parts});
}

bool bit_identical(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor ca = a.is_contiguous() ? a : Tensor(), cb = b.is_contiguous() ? b : Tensor();
  REQUIRE(ca.defined());
  REQUIRE(cb.defined());
  return std::memcmp(ca.raw_data(), cb.raw_data(), static_cast<size_t>(a.numel()) * dtype_size(a.dtype())) == 0;
}

// The fixture's config.json with some fields replaced (null removes nothing: it sets the value to null).
std::string config_with(const nlohmann::json& changes, const std::vector<std::string>& remove = {}) {
  nlohmann::json j = nlohmann::json::parse(read_text(fixture("hf_olmo2_tiny/config.json")));
  for (const auto& [k, v] : changes.items()) j[k] = v;
  for (const auto& k : remove) j.erase(k);
  return j.dump();
}

}  // namespace

TEST_CASE("the converted HF fixture reproduces PyTorch's logits in every head, padded columns exactly 0") {
  const auto expected = io::load_safetensors(fixture("hf_olmo2_tiny_expected.safetensors"));
  const Tensor& ids = expected.at("input_ids");
  const std::vector<double> want = expected.at("logits").to_vector<double>();  // (B, T, 300)
  const int64_t real_vocab = expected.at("logits").size(2);

  struct Split {
    int64_t n_heads, depth, vocab;
  };
  for (const Split s : {Split{3, 2, 320}, Split{1, 4, 0}, Split{2, 1, 300}}) {
    INFO("n_heads ", s.n_heads, ", heads_depth ", s.depth, ", vocab ", s.vocab);
    auto model = load_hf_olmo2(fixture("hf_olmo2_tiny"), s.n_heads, s.depth, s.vocab);
    const int64_t V = s.vocab == 0 ? real_vocab : s.vocab;
    CHECK(model->config().trunk_layers == 4 - s.depth);
    CHECK(model->config().base_config.n_kv_heads == 2);
    NoGradGuard no_grad;
    const Tensor logits = model->forward(ids);  // (N, B, T, V)
    REQUIRE(logits.shape() == Shape{s.n_heads, ids.size(0), ids.size(1), V});
    const std::vector<float> got = logits.to_vector<float>();
    double max_diff = 0;
    int64_t padded_nonzero = 0;
    const int64_t rows = ids.numel();
    for (int64_t k = 0; k < s.n_heads; ++k)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t v = 0; v < V; ++v) {
          const float g = got[static_cast<size_t>((k * rows + r) * V + v)];
          if (v < real_vocab) {
            max_diff = std::max(max_diff, std::abs(g - want[static_cast<size_t>(r * real_vocab + v)]));
          } else if (g != 0.0f) {
            ++padded_nonzero;
          }
        }
    // Absolute 1e-5 (the logits are O(1): at most about 4 here); measured: 2.5e-6.
    CHECK_MESSAGE(max_diff <= 1e-5, "max |logit - PyTorch| = ", max_diff);
    CHECK(padded_nonzero == 0);
  }
}

// What `hydra convert` then `hydra forward --out L.npy` do, minus the argument parsing: convert, write
// the model directory, read it back, run the forward, write and read the logits as .npy.
TEST_CASE("convert -> model directory -> forward -> .npy reproduces PyTorch's logits") {
  const auto expected = io::load_safetensors(fixture("hf_olmo2_tiny_expected.safetensors"));
  const Tensor& ids = expected.at("input_ids");
  const std::vector<double> want = expected.at("logits").to_vector<double>();
  const int64_t real_vocab = expected.at("logits").size(2);
  TempDir dir;
  save_model_dir(dir.file("m"), *load_hf_olmo2(fixture("hf_olmo2_tiny"), 5, 3, 320));
  auto model = load_model_dir(dir.file("m"));
  {
    NoGradGuard no_grad;
    io::save_npy(dir.file("logits.npy"), model->forward(ids));
  }
  const Tensor logits = io::load_npy(dir.file("logits.npy"));
  REQUIRE(logits.shape() == Shape{5, ids.size(0), ids.size(1), 320});
  const std::vector<float> got = logits.to_vector<float>();
  const int64_t rows = ids.numel();
  double max_diff = 0;
  for (int64_t k = 0; k < 5; ++k)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t v = 0; v < real_vocab; ++v)
        max_diff = std::max(max_diff, std::abs(got[static_cast<size_t>((k * rows + r) * 320 + v)] -
                                               want[static_cast<size_t>(r * real_vocab + v)]));
  CHECK_MESSAGE(max_diff <= 1e-5, "max |logit - PyTorch| = ", max_diff);
}

TEST_CASE("an exported head converts back to bit-identical tensors (single file and sharded)") {
  TempDir dir;
  // Random init: every head its own weights, so exporting the wrong head would show.
  HydraTransformerConfig config = HydraTransformerConfig::preset("tiny");
  config.base_config.vocab_size = 96;
  config.base_config.d_model = 64;
  config.base_config.n_heads = 4;
  config.base_config.n_kv_heads = 2;
  config.base_config.head_dim = 16;
  config.base_config.hidden_size = 96;
  config.validate();
  auto model = config.build("cpu", 11);
  const nn::StateDict state = model->state_dict();
  REQUIRE_FALSE(bit_identical(state.at("heads.0.blocks.1.attention.w_q.weight"),
                              state.at("heads.2.blocks.1.attention.w_q.weight")));

  for (const uint64_t shard_limit : {kHfDefaultMaxShardBytes, uint64_t{60'000}}) {
    INFO("shard limit ", shard_limit);
    const std::string out = dir.file("hf-" + std::to_string(shard_limit));
    const auto files = export_hf_olmo2(*model, 2, out, 128, shard_limit);
    if (shard_limit == kHfDefaultMaxShardBytes) {
      CHECK(files == std::vector<std::string>{"model.safetensors"});
    } else {
      CHECK(files.size() > 3);
      char first[64];
      std::snprintf(first, sizeof first, "model-00001-of-%05zu.safetensors", files.size() - 1);
      CHECK(files.front() == first);
      CHECK(files.back() == "model.safetensors.index.json");
    }
    const nlohmann::json hf_config = nlohmann::json::parse(read_text(out + "/config.json"));
    CHECK(hf_config.at("architectures") == nlohmann::json::array({"Olmo2ForCausalLM"}));
    CHECK(hf_config.at("model_type") == "olmo2");
    CHECK(hf_config.at("num_hidden_layers") == 4);
    CHECK(hf_config.at("num_key_value_heads") == 2);
    CHECK(hf_config.at("vocab_size") == 96);
    CHECK(hf_config.at("max_position_embeddings") == 128);
    CHECK(hf_config.at("tie_word_embeddings") == false);

    // HF names, head 2's blocks renumbered after the trunk (2 trunk blocks).
    const auto hf = io::load_safetensors_checkpoint(out);
    CHECK(hf.size() == 3 + 4 * 11);
    CHECK(bit_identical(hf.at("model.layers.3.mlp.down_proj.weight"), state.at("heads.2.blocks.1.feed_forward.w2.weight")));
    CHECK(bit_identical(hf.at("model.layers.1.self_attn.k_norm.weight"), state.at("trunk.blocks.1.attention.k_norm.weight")));
    CHECK(bit_identical(hf.at("lm_head.weight"), state.at("lm_head.w_out.weight")));
    CHECK(bit_identical(hf.at("model.norm.weight"), state.at("lm_head.norm.weight")));

    // Back: the same split gives head 2's weights in every head, bit for bit.
    auto back = load_hf_olmo2(out, 3, 2);
    CHECK(back->config().to_json() == [&] {
      HydraTransformerConfig c = config;
      return c.to_json();
    }());
    for (const auto& entry : back->state_dict()) {
      const std::string& name = entry.first;
      const Tensor& t = entry.second;
      INFO(name);
      std::string source = name;
      if (name.starts_with("heads.")) source = "heads.2" + name.substr(name.find('.', 6));
      CHECK(bit_identical(t, state.at(source)));
    }
  }
  expect_error("existing output", [&] { export_hf_olmo2(*model, 0, dir.path.string()); }, {"already exists"});
  expect_error("head out of range", [&] { export_hf_olmo2(*model, 3, dir.file("x")); }, {"head 3 is outside [0, 3)"});
  CHECK_FALSE(fs::exists(dir.file("x")));
}

TEST_CASE("config.json: 16 layers with --heads-depth 3 gives trunk 13, the OLMo-2 1B split, nothing allocated") {
  const std::string text = R"({"architectures": ["Olmo2ForCausalLM"], "model_type": "olmo2", "vocab_size": 100352,
    "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 16,
    "num_key_value_heads": 16, "rms_norm_eps": 1e-06, "rope_theta": 500000, "max_position_embeddings": 4096,
    "tie_word_embeddings": false, "attention_bias": false, "rope_scaling": null, "hidden_act": "silu",
    "eos_token_id": 100257, "pad_token_id": 100277})";
  const HfOlmo2Config hf = parse_hf_olmo2_config(text, "config.json");
  CHECK(hf.max_position_embeddings == 4096);
  const HydraTransformerConfig h = hydra_config_from_hf(hf, 5, 3);
  CHECK(h.trunk_layers == 13);
  CHECK(h.head_layers == 3);
  CHECK(h.n_heads == 5);
  CHECK(h.base_config.head_dim == 128);
  CHECK(h.to_json() == HydraTransformerConfig::from_olmo2_1B(5, 3, 100352).to_json());
  auto meta_model = h.build("meta");
  CHECK(meta_model->is_meta());
  CHECK(meta_model->trunk.blocks.size() == 13);
  // num_key_value_heads missing or null means plain multi-head attention, as in transformers.
  const HfOlmo2Config no_kv = parse_hf_olmo2_config(config_with({}, {"num_key_value_heads"}), "c");
  CHECK(no_kv.base.n_kv_heads == no_kv.base.n_heads);
  CHECK(parse_hf_olmo2_config(config_with({{"num_key_value_heads", nullptr}}), "c").base.n_kv_heads == 4);
  CHECK(hydra_config_from_hf(no_kv, 2, 1, 512).base_config.vocab_size == 512);
  expect_error("vocab smaller", [&] { hydra_config_from_hf(hf, 5, 3, 1000); },
               {"--vocab-size 1000 is smaller than the checkpoint's vocab_size 100352"});
  expect_error("too deep", [&] { hydra_config_from_hf(hf, 5, 17); }, {"--heads-depth 17", "16"});
}

TEST_CASE("config.json refusals and malformed fields, each with its message") {
  auto rejects = [](const std::string& name, const std::string& text, std::vector<std::string> parts) {
    parts.push_back("cfg.json");
    expect_error(name, [&] { parse_hf_olmo2_config(text, "cfg.json"); }, parts);
  };
  rejects("tied embeddings", config_with({{"tie_word_embeddings", true}}),
          {"tie_word_embeddings = true is not supported", "own weight"});
  rejects("attention bias", config_with({{"attention_bias", true}}), {"attention_bias = true is not supported"});
  rejects("rope scaling", config_with({{"rope_scaling", {{"rope_type", "linear"}, {"factor", 2.0}}}}),
          {"rope_scaling", "is not supported", "linear"});
  rejects("another model", config_with({{"model_type", "llama"}}), {"model_type \"llama\" is not supported"});
  rejects("no model_type", config_with({}, {"model_type"}), {"missing field 'model_type'"});
  rejects("another architecture", config_with({{"architectures", {"LlamaForCausalLM"}}}),
          {"does not list \"Olmo2ForCausalLM\""});
  rejects("gelu", config_with({{"hidden_act", "gelu"}}), {"hidden_act \"gelu\" is not supported"});
  rejects("head_dim", config_with({{"head_dim", 16}}), {"head_dim 16 is not supported", "= 12"});
  rejects("missing hidden_size", config_with({}, {"hidden_size"}), {"missing field 'hidden_size'"});
  rejects("missing rope_theta", config_with({}, {"rope_theta"}), {"missing field 'rope_theta'"});
  rejects("missing max_position_embeddings", config_with({}, {"max_position_embeddings"}),
          {"missing field 'max_position_embeddings'"});
  rejects("negative layers", config_with({{"num_hidden_layers", -4}}), {"'num_hidden_layers' must be a whole number"});
  rejects("fractional heads", config_with({{"num_attention_heads", 2.5}}), {"'num_attention_heads' must be a whole number"});
  rejects("huge vocab", config_with({{"vocab_size", 1LL << 40}}), {"'vocab_size' must be a whole number from 1 to"});
  rejects("zero eps", config_with({{"rms_norm_eps", 0}}), {"'rms_norm_eps' must be a positive number"});
  rejects("heads do not divide", config_with({{"num_attention_heads", 5}}),
          {"hidden_size 48 is not a multiple of num_attention_heads 5"});
  rejects("kv heads do not divide", config_with({{"num_key_value_heads", 3}}), {"n_kv_heads = 3", "must divide"});
  rejects("bool as string", config_with({{"tie_word_embeddings", "no"}}), {"'tie_word_embeddings' must be true or false"});
  rejects("not JSON", "{\"model_type\": ", {"not valid JSON"});
  rejects("duplicate key", R"({"model_type": "olmo2", "model_type": "olmo2"})", {"names 'model_type' twice"});
  rejects("not an object", "[1]", {"expected a JSON object"});
}

TEST_CASE("HF names: every OLMo-2 name maps both ways; unmapped, missing, misshapen tensors are errors naming them") {
  CHECK(hf_to_olmo_name("model.layers.12.self_attn.o_proj.weight", "s") == "blocks.12.attention.w_out.weight");
  CHECK(hf_to_olmo_name("model.layers.0.mlp.up_proj.weight", "s") == "blocks.0.feed_forward.w3.weight");
  CHECK(hf_to_olmo_name("model.layers.3.post_feedforward_layernorm.weight", "s") == "blocks.3.feed_forward_norm.weight");
  CHECK(hf_to_olmo_name("lm_head.weight", "s") == "lm_head.w_out.weight");
  CHECK(olmo_to_hf_name("blocks.7.attention.q_norm.weight") == "model.layers.7.self_attn.q_norm.weight");
  CHECK(olmo_to_hf_name("embeddings.weight") == "model.embed_tokens.weight");
  for (const char* bad : {"model.layers.0.input_layernorm.weight", "model.layers.x.mlp.up_proj.weight",
                          "model.layers.01.mlp.up_proj.weight", "model.layers.-1.mlp.up_proj.weight",
                          "model.embed_tokens.bias", "transformer.wte.weight", "model.layers..mlp.up_proj.weight"}) {
    INFO(bad);
    expect_error(bad, [&] { hf_to_olmo_name(bad, "dir"); },
                 {"dir", std::string("tensor '") + bad + "' is not an OLMo-2 weight"});
  }

  const std::string dir = fixture("hf_olmo2_tiny");
  const HfOlmo2Config hf = parse_hf_olmo2_config(read_text(dir + "/config.json"), "config.json");
  const auto good = io::load_safetensors_checkpoint(dir);
  CHECK(olmo_state_from_hf(good, hf.base, dir).size() == good.size());

  auto with = [&](const std::function<void(std::map<std::string, Tensor>&)>& edit) {
    auto s = good;
    edit(s);
    return s;
  };
  auto extra = with([](auto& s) { s["model.layers.0.input_layernorm.weight"] = zeros({48}); });
  expect_error("unmapped name", [&] { olmo_state_from_hf(extra, hf.base, dir); },
               {dir, "tensor 'model.layers.0.input_layernorm.weight' is not an OLMo-2 weight", "docs/model.md"});
  auto missing = with([](auto& s) { s.erase("model.layers.2.self_attn.k_norm.weight"); });
  expect_error("missing name", [&] { olmo_state_from_hf(missing, hf.base, dir); },
               {dir, "missing tensor 'model.layers.2.self_attn.k_norm.weight' (shape [24])"});
  auto no_head = with([](auto& s) { s.erase("lm_head.weight"); });
  expect_error("tied checkpoint without lm_head", [&] { olmo_state_from_hf(no_head, hf.base, dir); },
               {"missing tensor 'lm_head.weight'"});
  auto deep = with([](auto& s) { s["model.layers.4.mlp.up_proj.weight"] = zeros({128, 48}); });
  expect_error("layer beyond the config", [&] { olmo_state_from_hf(deep, hf.base, dir); },
               {"'model.layers.4.mlp.up_proj.weight' does not belong to a model with 4 layers"});
  auto shape = with([](auto& s) { s["model.layers.1.self_attn.k_proj.weight"] = zeros({48, 48}); });
  expect_error("wrong shape", [&] { olmo_state_from_hf(shape, hf.base, dir); },
               {"'model.layers.1.self_attn.k_proj.weight' has shape [48, 48] but config.json implies [24, 48]"});
  nn::TransformerConfig huge = hf.base;
  huge.n_layers = int64_t{1} << 31;  // a hostile config: found missing at once, nothing enumerated
  expect_error("two billion layers", [&] { olmo_state_from_hf(good, huge, dir); },
               {"missing tensor 'model.layers.4.mlp.down_proj.weight'"});
  auto dtype = with([](auto& s) { s["model.norm.weight"] = zeros({48}, DType::Float64); });
  expect_error("float64", [&] { olmo_state_from_hf(dtype, hf.base, dir); },
               {"'model.norm.weight' is float64", "expected F32, F16 or BF16"});
}

TEST_CASE("load_hf_olmo2 on broken directories: a message naming the file, nothing built") {
  TempDir dir;
  expect_error("no directory", [&] { load_hf_olmo2(dir.file("nope"), 1, 1); }, {"nope", "config.json"});
  write_text(dir.file("config.json"), read_text(fixture("hf_olmo2_tiny/config.json")));
  expect_error("no weights", [&] { load_hf_olmo2(dir.path.string(), 1, 1); },
               {"no weights in", "model.safetensors.index.json"});
  // The fixture's index with only its first shard present.
  fs::copy_file(fixture("hf_olmo2_tiny/model.safetensors.index.json"), dir.file("model.safetensors.index.json"));
  fs::copy_file(fixture("hf_olmo2_tiny/model-00001-of-00002.safetensors"), dir.file("model-00001-of-00002.safetensors"));
  expect_error("missing shard", [&] { load_hf_olmo2(dir.path.string(), 1, 1); },
               {"shard 'model-00002-of-00002.safetensors'", "does not exist"});
  write_text(dir.file("config.json"), config_with({{"tie_word_embeddings", true}}));
  expect_error("tied", [&] { load_hf_olmo2(dir.path.string(), 1, 1); }, {"config.json", "tie_word_embeddings"});
}
