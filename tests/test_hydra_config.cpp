// HydraTransformerConfig: validation messages, parameter counts (docs/model.md), presets, JSON.
#include <doctest/doctest.h>

#include "hydra/config.h"
#include "hydra/hydra_transformer.h"
#include "support/op_harness.h"

using namespace hydra;
using hydra::test::check_error_case;

TEST_CASE("parameter counts of the OLMo-2 factories (docs/model.md, 'Parameter counts')") {
  CHECK(HydraTransformerConfig::from_olmo2_1B(5, 3).num_params() == 2'290'321'408LL);
  CHECK(HydraTransformerConfig::from_olmo2_7B(5, 3).num_params() == 9'727'315'968LL);
  CHECK(HydraTransformerConfig::from_olmo2_7B(10, 3).num_params() == 12'763'189'248LL);
  auto c = HydraTransformerConfig::from_olmo2_1B();
  CHECK(c.trunk_layers == 13);
  CHECK(c.head_layers == 3);
  CHECK(c.base_config.head_dim == 128);
  CHECK(c.base_config.hidden_size == 8192);
  CHECK(HydraTransformerConfig::from_olmo2_7B().base_config.hidden_size == 11008);
}

TEST_CASE("non-embedding parameters: everything but the input embeddings, as a built model counts them") {
  CHECK(HydraTransformerConfig::from_olmo2_1B(5, 3).num_non_embedding_params() == 2'084'800'512LL);
  CHECK(HydraTransformerConfig::from_olmo2_7B(5, 3).num_non_embedding_params() == 9'316'274'176LL);
  CHECK(HydraTransformerConfig::from_olmo2_7B(10, 3).num_non_embedding_params() == 12'352'147'456LL);
  // One head holding all 16 layers is the plain OLMo-2 1B.
  CHECK(HydraTransformerConfig::from_olmo2_1B(1, 16).num_params() == 1'484'916'736LL);
  for (const auto& name : HydraTransformerConfig::preset_names()) {
    INFO(name);
    const auto c = HydraTransformerConfig::preset(name);
    auto model = c.build("meta");
    int64_t counted = 0, embeddings = 0;
    for (const auto& [param, t] : model->named_parameters()) {
      counted += t->numel();
      if (param == "trunk.embeddings.weight") embeddings += t->numel();
    }
    CHECK(counted == c.num_params());
    CHECK(counted - embeddings == c.num_non_embedding_params());
    // The output projection is not an embedding here: it counts.
    CHECK(c.num_non_embedding_params() > model->lm_head.w_out.weight.numel());
  }
}

TEST_CASE("presets") {
  auto tiny = HydraTransformerConfig::preset("tiny");
  CHECK(tiny.base_config.vocab_size == 4096);
  CHECK(tiny.base_config.d_model == 256);
  CHECK(tiny.trunk_layers == 2);
  CHECK(tiny.head_layers == 2);
  CHECK(tiny.n_heads == 3);
  auto small = HydraTransformerConfig::preset("small");
  CHECK(small.trunk_layers == 6);
  CHECK(small.n_heads == 4);
  // ~75M parameters: the benchmark model of bench/README.md.
  CHECK(small.num_params() > 70'000'000);
  CHECK(small.num_params() < 80'000'000);
  for (const auto& name : HydraTransformerConfig::preset_names()) HydraTransformerConfig::preset(name).validate();
  check_error_case({"unknown preset", [] { HydraTransformerConfig::preset("huge"); }, {"huge", "tiny", "olmo2-7b"}});
}

TEST_CASE("validation names the field and the rule") {
  auto c = HydraTransformerConfig::preset("tiny");
  auto bad = c;
  bad.trunk_layers = 3;
  check_error_case({"layer split", [&] { bad.validate(); }, {"trunk_layers (3)", "head_layers (2)", "n_layers (4)"}});
  bad = c;
  bad.n_heads = 0;
  check_error_case({"n_heads", [&] { bad.validate(); }, {"n_heads = 0", ">= 1"}});
  bad = c;
  bad.head_layers = 0;
  bad.trunk_layers = 4;
  check_error_case({"head_layers", [&] { bad.validate(); }, {"head_layers = 0"}});
  bad = c;
  bad.base_config.n_kv_heads = 3;
  check_error_case({"kv heads", [&] { bad.validate(); }, {"n_kv_heads = 3", "n_heads = 4"}});
}

TEST_CASE("config.json round trip and its errors") {
  auto c = HydraTransformerConfig::from_olmo2_7B(10, 3);
  auto back = HydraTransformerConfig::from_json(c.to_json(), "config.json");
  CHECK(back.to_json() == c.to_json());
  CHECK(back.num_params() == c.num_params());

  auto j = c.to_json();
  j.erase("n_heads");
  check_error_case({"missing", [&] { HydraTransformerConfig::from_json(j, "m/config.json"); },
                    {"m/config.json", "missing field 'n_heads'"}});
  j = c.to_json();
  j["base_config"]["d_model"] = "big";
  check_error_case({"type", [&] { HydraTransformerConfig::from_json(j, "m/config.json"); },
                    {"m/config.json", "d_model", "integer"}});
  j = c.to_json();
  j["format_version"] = 99;
  check_error_case({"version", [&] { HydraTransformerConfig::from_json(j, "m/config.json"); }, {"format_version 99"}});
  j = c.to_json();
  j["trunk_layers"] = 5;
  check_error_case({"invalid", [&] { HydraTransformerConfig::from_json(j, "m/config.json"); },
                    {"m/config.json", "trunk_layers (5)"}});
}

TEST_CASE("sizes a config.json may ask for are bounded, and every product is overflow-checked") {
  const auto c = HydraTransformerConfig::preset("tiny");
  auto json_with = [&](const char* section, const char* field, int64_t value) {
    auto j = c.to_json();
    if (std::string(section).empty()) j[field] = value;
    else j[section][field] = value;
    return j;
  };
  auto from = [](const nlohmann::json& j) { HydraTransformerConfig::from_json(j, "m/config.json"); };
  // 10^9 layers or heads: refused before any module is made (a meta build of them would never finish).
  auto j = json_with("base_config", "n_layers", 1'000'000'000);
  j["trunk_layers"] = 999'999'998;
  check_error_case({"layers", [&] { from(j); }, {"m/config.json", "n_layers = 1000000000", "at most 4096"}});
  check_error_case({"heads", [&] { from(json_with("", "n_heads", 1'000'000'000)); },
                    {"m/config.json", "n_heads = 1000000000", "at most 1024"}});
  check_error_case({"vocab 2^40", [&] { from(json_with("base_config", "vocab_size", int64_t{1} << 40)); },
                    {"m/config.json", "vocab_size = 1099511627776", "at most 2147483648"}});
  // Blocks: 1024 heads x 20 layers each is 20480 blocks.
  j = json_with("", "n_heads", 1024);
  j["base_config"]["n_layers"] = 22;
  j["head_layers"] = 20;
  check_error_case({"blocks", [&] { from(j); }, {"m/config.json", "20482 blocks; at most 16384"}});
  // Products that overflow int64: d_model x hidden_size x 3 with both 2^31.
  j = json_with("base_config", "d_model", int64_t{1} << 31);
  j["base_config"]["hidden_size"] = int64_t{1} << 31;
  j["base_config"]["n_heads"] = 1 << 24;
  j["base_config"]["n_kv_heads"] = 1 << 24;
  j["base_config"]["head_dim"] = 128;
  check_error_case({"overflow", [&] { from(j); }, {"m/config.json", "overflows int64"}});
  // Within int64 but above 2^48 parameters.
  j = json_with("base_config", "vocab_size", int64_t{1} << 31);
  j["base_config"]["d_model"] = int64_t{1} << 20;
  j["base_config"]["n_heads"] = 1 << 12;
  j["base_config"]["n_kv_heads"] = 1 << 12;
  j["base_config"]["head_dim"] = 256;
  j["base_config"]["hidden_size"] = 4;
  check_error_case({"too many parameters", [&] { from(j); }, {"m/config.json", "at most 281474976710656"}});
}

TEST_CASE("build: cpu and empty refuse a model larger than this machine before allocating; meta stays free") {
  // 2^45 parameters (128 TiB of float32): valid, countable, and larger than any machine here.
  auto c = HydraTransformerConfig::preset("tiny");
  c.base_config.vocab_size = int64_t{1} << 31;
  c.base_config.d_model = 1 << 13;
  c.base_config.n_heads = 64;
  c.base_config.n_kv_heads = 64;
  c.base_config.head_dim = 128;
  c.validate();
  CHECK(c.num_params() > (int64_t{1} << 45));
  for (const char* device : {"cpu", "empty"})
    check_error_case({device, [&] { c.build(device); },
                      {"building the model (", " float32 parameters) needs 128.01 TiB", "more than this machine's memory"}});
  auto meta = c.build("meta");
  CHECK(meta->is_meta());
  CHECK(meta->num_params() == c.num_params());
  check_error_case({"device", [&] { HydraTransformerConfig::preset("tiny").build("gpu"); },
                    {"init_device 'gpu'", "\"cpu\", \"empty\" or \"meta\""}});
}

TEST_CASE("parameter_shapes and slab_bytes match the built model") {
  auto gqa = HydraTransformerConfig::preset("tiny");
  gqa.base_config.n_kv_heads = 2;
  gqa.base_config.qk_norm = false;
  gqa.base_config.vocab_size = 4097;  // a parameter whose size is not a multiple of 16
  for (const auto& c : {HydraTransformerConfig::preset("tiny"), HydraTransformerConfig::preset("small"), gqa}) {
    const auto shapes = c.parameter_shapes();
    const auto model = c.build("meta");
    const auto params = model->named_parameters();
    REQUIRE(shapes.size() == params.size());
    for (size_t i = 0; i < shapes.size(); ++i) {
      CHECK(shapes[i].first == params[i].first);
      CHECK(shapes[i].second == params[i].second->shape());
    }
    const auto built = c.build("empty");
    CHECK(!built->is_meta());
    const Tensor& first = built->trunk.embeddings.weight;
    CHECK(static_cast<int64_t>(first.impl()->storage->nbytes) == c.slab_bytes());
  }
}
