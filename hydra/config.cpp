#include "hydra/config.h"

#include "hydra/hydra_transformer.h"
#include "io/json_file.h"
#include "nn/lm_head.h"
#include "nn/transformer_block.h"
#include "tensor/error.h"

namespace hydra {

namespace {

// a * b and a + b for parameter counts; an overflow is an error (a config can ask for any sizes).
int64_t checked_mul(int64_t a, int64_t b) {
  int64_t out = 0;
  HYDRA_CHECK(!__builtin_mul_overflow(a, b, &out), "HydraTransformerConfig: the parameter count overflows int64 (",
              a, " x ", b, ")");
  return out;
}
int64_t checked_add(int64_t a, int64_t b) {
  int64_t out = 0;
  HYDRA_CHECK(!__builtin_add_overflow(a, b, &out), "HydraTransformerConfig: the parameter count overflows int64 (",
              a, " + ", b, ")");
  return out;
}

}  // namespace

void HydraTransformerConfig::validate() const {
  base_config.validate();
  const auto& c = base_config;
  for (const auto& [field, value] : {std::pair<const char*, int64_t>{"vocab_size", c.vocab_size},
                                     {"d_model", c.d_model},
                                     {"n_layers", c.n_layers},
                                     {"n_heads", c.n_heads},
                                     {"n_kv_heads", c.n_kv_heads},
                                     {"head_dim", c.head_dim},
                                     {"hidden_size", c.hidden_size}})
    HYDRA_CHECK(value <= kMaxSize, "TransformerConfig.", field, " = ", value, ": must be at most ", kMaxSize);
  HYDRA_CHECK(c.n_layers <= kMaxLayers, "TransformerConfig.n_layers = ", c.n_layers, ": must be at most ",
              kMaxLayers);
  HYDRA_CHECK(n_heads >= 1, "HydraTransformerConfig.n_heads = ", n_heads, ": must be >= 1");
  HYDRA_CHECK(n_heads <= kMaxHeads, "HydraTransformerConfig.n_heads = ", n_heads, ": must be at most ", kMaxHeads);
  HYDRA_CHECK(trunk_layers >= 0, "HydraTransformerConfig.trunk_layers = ", trunk_layers, ": must be >= 0");
  HYDRA_CHECK(head_layers >= 1, "HydraTransformerConfig.head_layers = ", head_layers, ": must be >= 1");
  HYDRA_CHECK(trunk_layers <= kMaxLayers && head_layers <= kMaxLayers &&
                  trunk_layers + head_layers == base_config.n_layers,
              "HydraTransformerConfig: trunk_layers (", trunk_layers, ") + head_layers (", head_layers,
              ") must equal base_config.n_layers (", base_config.n_layers, ")");
  const int64_t blocks = trunk_layers + n_heads * head_layers;  // no overflow: each factor is bounded above
  HYDRA_CHECK(blocks <= kMaxBlocks, "HydraTransformerConfig: trunk_layers + n_heads x head_layers = ", blocks,
              " blocks; at most ", kMaxBlocks, " are supported");
  const int64_t params = num_params();  // overflow-checked
  HYDRA_CHECK(params <= kMaxParams, "HydraTransformerConfig: ", params, " parameters; at most ", kMaxParams,
              " are supported");
}

std::unique_ptr<HydraTransformer> HydraTransformerConfig::build(const std::string& init_device, uint64_t seed) const {
  return std::make_unique<HydraTransformer>(*this, init_device, seed);
}

int64_t HydraTransformerConfig::block_params() const {
  const auto& c = base_config;
  const int64_t q = checked_mul(c.n_heads, c.head_dim), kv = checked_mul(c.n_kv_heads, c.head_dim);
  // w_q, w_k, w_v, w_out
  int64_t attention = checked_add(checked_mul(checked_mul(2, c.d_model), q), checked_mul(checked_mul(2, c.d_model), kv));
  if (c.qk_norm) attention = checked_add(attention, checked_add(q, kv));  // q_norm, k_norm
  const int64_t feed_forward = checked_mul(checked_mul(3, c.d_model), c.hidden_size);  // w1, w2, w3
  return checked_add(checked_add(attention, feed_forward), checked_mul(2, c.d_model));  // + the two block norms
}

int64_t HydraTransformerConfig::embedding_params() const {
  return checked_mul(base_config.vocab_size, base_config.d_model);
}
int64_t HydraTransformerConfig::trunk_params() const {
  return checked_add(embedding_params(), checked_mul(trunk_layers, block_params()));
}
int64_t HydraTransformerConfig::head_params() const { return checked_mul(head_layers, block_params()); }
int64_t HydraTransformerConfig::lm_head_params() const {
  return checked_add(base_config.d_model, checked_mul(base_config.vocab_size, base_config.d_model));
}
int64_t HydraTransformerConfig::num_params() const {
  return checked_add(checked_add(trunk_params(), checked_mul(n_heads, head_params())), lm_head_params());
}

std::vector<std::pair<std::string, Shape>> HydraTransformerConfig::parameter_shapes() const {
  validate();
  // One meta block and one meta lm_head (no memory) give the per-block and lm_head names, so the names
  // cannot drift from the layers' own registration; tests/test_hydra_config.cpp compares the whole list
  // with a meta build.
  const nn::TransformerBlock block(base_config);
  const nn::LMHead head(base_config.d_model, base_config.vocab_size, base_config.norm_eps);
  std::vector<std::pair<std::string, Shape>> out;
  out.push_back({"trunk.embeddings.weight", {base_config.vocab_size, base_config.d_model}});
  auto add_blocks = [&](const std::string& prefix, int64_t count) {
    for (int64_t i = 0; i < count; ++i)
      for (const auto& [name, t] : block.named_parameters())
        out.push_back({prefix + std::to_string(i) + "." + name, t->shape()});
  };
  add_blocks("trunk.blocks.", trunk_layers);
  for (int64_t k = 0; k < n_heads; ++k) add_blocks("heads." + std::to_string(k) + ".blocks.", head_layers);
  for (const auto& [name, t] : head.named_parameters()) out.push_back({"lm_head." + name, t->shape()});
  return out;
}

int64_t HydraTransformerConfig::slab_bytes() const {
  validate();
  int64_t floats = 0;
  for (const auto& [name, shape] : parameter_shapes())
    floats = checked_add(floats, (shape_numel(shape) + 15) / 16 * 16);  // as nn::materialize_parameters lays out
  return checked_mul(floats, 4);
}
int64_t HydraTransformerConfig::num_non_embedding_params() const { return num_params() - embedding_params(); }

namespace {

// OLMo-2 defaults shared by every preset: MHA, head_dim = d / heads, RoPE θ 500000, eps 1e-6, QK-norm.
nn::TransformerConfig olmo2_like(int64_t vocab, int64_t d_model, int64_t n_layers, int64_t n_heads, int64_t ffn) {
  nn::TransformerConfig c;
  c.vocab_size = vocab;
  c.d_model = d_model;
  c.n_layers = n_layers;
  c.n_heads = n_heads;
  c.n_kv_heads = n_heads;
  c.head_dim = d_model / n_heads;
  c.hidden_size = ffn;
  return c;
}

HydraTransformerConfig split(nn::TransformerConfig base, int64_t n_heads, int64_t head_layers) {
  HydraTransformerConfig h;
  h.base_config = base;
  h.n_heads = n_heads;
  h.head_layers = head_layers;
  h.trunk_layers = base.n_layers - head_layers;
  h.validate();
  return h;
}

}  // namespace

HydraTransformerConfig HydraTransformerConfig::from_olmo2_1B(int64_t n_heads, int64_t heads_depth, int64_t vocab_size) {
  return split(olmo2_like(vocab_size, 2048, 16, 16, 8192), n_heads, heads_depth);
}

HydraTransformerConfig HydraTransformerConfig::from_olmo2_7B(int64_t n_heads, int64_t heads_depth, int64_t vocab_size) {
  return split(olmo2_like(vocab_size, 4096, 32, 32, 11008), n_heads, heads_depth);
}

std::vector<std::string> HydraTransformerConfig::preset_names() {
  return {"tiny", "small", "gpt2", "olmo2-1b", "olmo2-7b"};
}

HydraTransformerConfig HydraTransformerConfig::preset(const std::string& name) {
  // Small presets for tests, demos and benchmarks (bench/README.md); the OLMo-2 ones are the factories.
  if (name == "tiny") return split(olmo2_like(4096, 256, 4, 4, 1024), 3, 2);
  if (name == "small") return split(olmo2_like(16384, 512, 8, 8, 2048), 4, 2);
  if (name == "gpt2") return split(olmo2_like(50304, 768, 12, 12, 2048), 2, 2);
  if (name == "olmo2-1b") return from_olmo2_1B();
  if (name == "olmo2-7b") return from_olmo2_7B();
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("unknown preset '" + name + "' (known presets: " + known + ")");
}

nlohmann::json HydraTransformerConfig::to_json() const {
  const auto& c = base_config;
  return {{"format_version", kConfigFormatVersion},
          {"n_heads", n_heads},
          {"trunk_layers", trunk_layers},
          {"head_layers", head_layers},
          {"base_config",
           {{"vocab_size", c.vocab_size},
            {"d_model", c.d_model},
            {"n_layers", c.n_layers},
            {"n_heads", c.n_heads},
            {"n_kv_heads", c.n_kv_heads},
            {"head_dim", c.head_dim},
            {"hidden_size", c.hidden_size},
            {"rope_theta", c.rope_theta},
            {"norm_eps", c.norm_eps},
            {"qk_norm", c.qk_norm},
            {"init_std", c.init_std}}}};
}

namespace {

const nlohmann::json& field(const nlohmann::json& obj, const std::string& name, const std::string& where) {
  HYDRA_CHECK(obj.is_object(), where, ": expected a JSON object");
  auto it = obj.find(name);
  HYDRA_CHECK(it != obj.end(), where, ": missing field '", name, "'");
  return *it;
}

int64_t int_field(const nlohmann::json& obj, const std::string& name, const std::string& where) {
  const auto& v = field(obj, name, where);
  HYDRA_CHECK(v.is_number_integer(), where, ": field '", name, "' must be an integer, got ", io::json_excerpt(v));
  return v.get<int64_t>();
}

double number_field(const nlohmann::json& obj, const std::string& name, const std::string& where) {
  const auto& v = field(obj, name, where);
  HYDRA_CHECK(v.is_number(), where, ": field '", name, "' must be a number, got ", io::json_excerpt(v));
  return v.get<double>();
}

}  // namespace

HydraTransformerConfig HydraTransformerConfig::from_json(const nlohmann::json& j, const std::string& source) {
  const int64_t version = int_field(j, "format_version", source);
  HYDRA_CHECK(version == kConfigFormatVersion, source, ": format_version ", version,
              " is not supported (this Hydra reads version ", kConfigFormatVersion, ")");
  HydraTransformerConfig h;
  h.n_heads = int_field(j, "n_heads", source);
  h.trunk_layers = int_field(j, "trunk_layers", source);
  h.head_layers = int_field(j, "head_layers", source);
  const std::string where = source + " (base_config)";
  const auto& b = field(j, "base_config", source);
  auto& c = h.base_config;
  c.vocab_size = int_field(b, "vocab_size", where);
  c.d_model = int_field(b, "d_model", where);
  c.n_layers = int_field(b, "n_layers", where);
  c.n_heads = int_field(b, "n_heads", where);
  c.n_kv_heads = int_field(b, "n_kv_heads", where);
  c.head_dim = int_field(b, "head_dim", where);
  c.hidden_size = int_field(b, "hidden_size", where);
  c.rope_theta = number_field(b, "rope_theta", where);
  c.norm_eps = number_field(b, "norm_eps", where);
  const auto& qk = field(b, "qk_norm", where);
  HYDRA_CHECK(qk.is_boolean(), where, ": field 'qk_norm' must be true or false, got ", io::json_excerpt(qk));
  c.qk_norm = qk.get<bool>();
  if (b.contains("init_std")) c.init_std = number_field(b, "init_std", where);
  try {
    h.validate();
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
  return h;
}

}  // namespace hydra
