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
