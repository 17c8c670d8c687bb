// HuggingFace OLMo-2 in and out (the mapping and the rules are in hf_olmo2.h).
#include "hydra/hf_olmo2.h"

#include <charconv>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>

#include "hydra/lora.h"
#include "hydra/model_dir.h"
#include "io/atomic_dir.h"
#include "io/atomic_file.h"
#include "io/input_file.h"
#include "io/json_file.h"
#include "io/safetensors_index.h"
#include "tensor/error.h"

namespace hydra {

namespace fs = std::filesystem;

namespace {

// Per-block names: HF suffix after "model.layers.{i}." <-> OLMo-core suffix after "blocks.{i}.".
constexpr std::pair<const char*, const char*> kBlockNames[] = {
    {"self_attn.q_proj.weight", "attention.w_q.weight"},
    {"self_attn.k_proj.weight", "attention.w_k.weight"},
    {"self_attn.v_proj.weight", "attention.w_v.weight"},
    {"self_attn.o_proj.weight", "attention.w_out.weight"},
    {"self_attn.q_norm.weight", "attention.q_norm.weight"},
    {"self_attn.k_norm.weight", "attention.k_norm.weight"},
    {"post_attention_layernorm.weight", "attention_norm.weight"},
    {"mlp.gate_proj.weight", "feed_forward.w1.weight"},
    {"mlp.up_proj.weight", "feed_forward.w3.weight"},
    {"mlp.down_proj.weight", "feed_forward.w2.weight"},
    {"post_feedforward_layernorm.weight", "feed_forward_norm.weight"},
};
constexpr std::pair<const char*, const char*> kTopNames[] = {
    {"model.embed_tokens.weight", "embeddings.weight"},
    {"model.norm.weight", "lm_head.norm.weight"},
    {"lm_head.weight", "lm_head.w_out.weight"},
};

// Config integers are bounded so no product of two of them overflows (shapes are checked against the
// weights before anything is allocated, so these limits only keep the arithmetic honest).
constexpr int64_t kMaxConfigInt = int64_t{1} << 31;
// An HF config.json is a few kB; refuse to read anything absurd into memory.
constexpr uint64_t kMaxHfConfigBytes = 1 << 20;

// "<prefix><index>.<rest>" -> (index, rest); false when name does not have that form.
bool split_indexed(const std::string& name, const std::string& prefix, int64_t* index, std::string* rest) {
  if (!name.starts_with(prefix)) return false;
  const size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return false;
  const char* first = name.data() + prefix.size();
  const char* last = name.data() + dot;
  if (*first == '0' && last - first > 1) return false;  // "01" is not a layer index HF writes
  auto [end, ec] = std::from_chars(first, last, *index);
  if (ec != std::errc() || end != last || *index < 0) return false;
  *rest = name.substr(dot + 1);
  return true;
}

const nlohmann::json* find_field(const nlohmann::json& j, const char* name) {
  const auto it = j.find(name);
  return it == j.end() ? nullptr : &*it;
}

int64_t required_int(const nlohmann::json& j, const char* name, const std::string& file) {
  const nlohmann::json* v = find_field(j, name);
  HYDRA_CHECK(v != nullptr, file, ": missing field '", name, "'");
  HYDRA_CHECK(v->is_number_integer() && v->get<int64_t>() >= 1 && v->get<int64_t>() <= kMaxConfigInt, file,
              ": field '", name, "' must be a whole number from 1 to ", kMaxConfigInt, ", got ", io::json_excerpt(*v));
  return v->get<int64_t>();
}

double required_positive(const nlohmann::json& j, const char* name, const std::string& file) {
  const nlohmann::json* v = find_field(j, name);
  HYDRA_CHECK(v != nullptr, file, ": missing field '", name, "'");
  HYDRA_CHECK(v->is_number() && v->get<double>() > 0, file, ": field '", name, "' must be a positive number, got ",
              io::json_excerpt(*v));
  return v->get<double>();
}

// A boolean that Hydra supports only as false; missing or null means false (Olmo2Config's default).
void require_false(const nlohmann::json& j, const char* name, const std::string& file, const char* why) {
  const nlohmann::json* v = find_field(j, name);
  if (v == nullptr || v->is_null()) return;
  HYDRA_CHECK(v->is_boolean(), file, ": field '", name, "' must be true or false, got ", io::json_excerpt(*v));
  HYDRA_CHECK(!v->get<bool>(), file, ": ", name, " = true is not supported (", why, ")");
}

}  // namespace

HfOlmo2Config parse_hf_olmo2_config(std::string_view text, const std::string& file) {
  const nlohmann::json j = io::parse_json_text(text, file);
  HYDRA_CHECK(j.is_object(), file, ": expected a JSON object, got ", j.type_name());

  const nlohmann::json* model_type = find_field(j, "model_type");
  HYDRA_CHECK(model_type != nullptr, file, ": missing field 'model_type' (expected \"olmo2\")");
  HYDRA_CHECK(model_type->is_string() && model_type->get<std::string>() == "olmo2", file, ": model_type ",
              io::json_excerpt(*model_type), " is not supported (expected \"olmo2\", an Olmo2ForCausalLM checkpoint)");
  if (const nlohmann::json* arch = find_field(j, "architectures"); arch != nullptr && !arch->is_null()) {
    bool found = false;
    if (arch->is_array())
      for (const auto& a : *arch) found = found || (a.is_string() && a.get<std::string>() == "Olmo2ForCausalLM");
    HYDRA_CHECK(found, file, ": architectures ", io::json_excerpt(*arch), " does not list \"Olmo2ForCausalLM\"");
  }

  require_false(j, "tie_word_embeddings", file, "Hydra's lm_head has its own weight, separate from the embeddings");
  require_false(j, "attention_bias", file, "Hydra's attention projections have no bias");
  if (const nlohmann::json* scaling = find_field(j, "rope_scaling"); scaling != nullptr)
    HYDRA_CHECK(scaling->is_null(), file, ": rope_scaling ", io::json_excerpt(*scaling),
                " is not supported (Hydra implements plain RoPE; expected null)");
  if (const nlohmann::json* act = find_field(j, "hidden_act"); act != nullptr)
    HYDRA_CHECK(act->is_string() && act->get<std::string>() == "silu", file, ": hidden_act ", io::json_excerpt(*act),
                " is not supported (expected \"silu\": the SwiGLU feed-forward)");

  HfOlmo2Config hf;
  nn::TransformerConfig& c = hf.base;
  c.vocab_size = required_int(j, "vocab_size", file);
  c.d_model = required_int(j, "hidden_size", file);
  c.hidden_size = required_int(j, "intermediate_size", file);
  c.n_layers = required_int(j, "num_hidden_layers", file);
  c.n_heads = required_int(j, "num_attention_heads", file);
  const nlohmann::json* kv = find_field(j, "num_key_value_heads");
  c.n_kv_heads = (kv == nullptr || kv->is_null()) ? c.n_heads : required_int(j, "num_key_value_heads", file);
  c.norm_eps = required_positive(j, "rms_norm_eps", file);
  c.rope_theta = required_positive(j, "rope_theta", file);
  c.qk_norm = true;
  if (const nlohmann::json* init = find_field(j, "initializer_range"); init != nullptr && init->is_number() &&
                                                                       init->get<double>() > 0)
    c.init_std = init->get<double>();
  hf.max_position_embeddings = required_int(j, "max_position_embeddings", file);

  HYDRA_CHECK(c.d_model % c.n_heads == 0, file, ": hidden_size ", c.d_model, " is not a multiple of num_attention_heads ",
              c.n_heads);
  c.head_dim = c.d_model / c.n_heads;
  if (const nlohmann::json* hd = find_field(j, "head_dim"); hd != nullptr && !hd->is_null())
    HYDRA_CHECK(hd->is_number_integer() && hd->get<int64_t>() == c.head_dim, file, ": head_dim ", io::json_excerpt(*hd),
                " is not supported (Hydra's head_dim is hidden_size / num_attention_heads = ", c.head_dim, ")");
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(file + ": " + e.what());
  }
  return hf;
}

nlohmann::ordered_json hf_olmo2_config_json(const nn::TransformerConfig& c, int64_t max_position_embeddings) {
  HYDRA_CHECK(c.head_dim * c.n_heads == c.d_model, "export: head_dim ", c.head_dim, " x ", c.n_heads,
              " heads != d_model ", c.d_model, " (HF OLMo-2 derives head_dim from hidden_size)");
  HYDRA_CHECK(c.qk_norm, "export: HF OLMo-2 always has QK-norm; this model has none");
  // Keys sorted, as transformers writes them.
  nlohmann::ordered_json j;
  j["architectures"] = {"Olmo2ForCausalLM"};
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["bos_token_id"] = nullptr;
  j["eos_token_id"] = nullptr;
  j["hidden_act"] = "silu";
  j["hidden_size"] = c.d_model;
  j["initializer_range"] = c.init_std;
  j["intermediate_size"] = c.hidden_size;
  j["max_position_embeddings"] = max_position_embeddings;
  j["model_type"] = "olmo2";
  j["num_attention_heads"] = c.n_heads;
  j["num_hidden_layers"] = c.n_layers;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["pad_token_id"] = nullptr;
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_scaling"] = nullptr;
  j["rope_theta"] = c.rope_theta;
  j["tie_word_embeddings"] = false;
  j["torch_dtype"] = "float32";
  j["use_cache"] = true;
  j["vocab_size"] = c.vocab_size;
  return j;
}

HydraTransformerConfig hydra_config_from_hf(const HfOlmo2Config& hf, int64_t n_heads, int64_t heads_depth,
                                            int64_t vocab_size) {
  HYDRA_CHECK(vocab_size == 0 || vocab_size >= hf.base.vocab_size, "--vocab-size ", vocab_size,
              " is smaller than the checkpoint's vocab_size ", hf.base.vocab_size, " (it can only pad)");
  HYDRA_CHECK(heads_depth >= 1 && heads_depth < hf.base.n_layers + 1, "--heads-depth ", heads_depth,
              " must be from 1 to num_hidden_layers (", hf.base.n_layers, ")");
  HydraTransformerConfig h;
  h.base_config = hf.base;
  if (vocab_size != 0) h.base_config.vocab_size = vocab_size;
  h.n_heads = n_heads;
  h.head_layers = heads_depth;
  h.trunk_layers = hf.base.n_layers - heads_depth;
  h.validate();
  return h;
}

std::string hf_to_olmo_name(const std::string& hf_name, const std::string& source) {
  for (const auto& [hf, olmo] : kTopNames)
    if (hf_name == hf) return olmo;
  int64_t i = 0;
  std::string rest;
  if (split_indexed(hf_name, "model.layers.", &i, &rest))
    for (const auto& [hf, olmo] : kBlockNames)
      if (rest == hf) return "blocks." + std::to_string(i) + "." + olmo;
  throw Error(detail::concat_message(source, ": tensor '", hf_name,
                                     "' is not an OLMo-2 weight (no mapping to Hydra; the names Hydra maps are listed "
                                     "in docs/model.md, 'HuggingFace <-> OLMo-core names')"));
}

std::string olmo_to_hf_name(const std::string& olmo_name) {
  for (const auto& [hf, olmo] : kTopNames)
    if (olmo_name == olmo) return hf;
  int64_t i = 0;
  std::string rest;
  if (split_indexed(olmo_name, "blocks.", &i, &rest))
    for (const auto& [hf, olmo] : kBlockNames)
      if (rest == olmo) return "model.layers." + std::to_string(i) + "." + hf;
  throw Error("no HF OLMo-2 name for OLMo-core tensor '" + olmo_name + "'");
}

namespace {

// The shape of each per-block tensor (HF suffix) and of the three others, for an OLMo-2 of config c.
std::map<std::string, Shape> hf_block_shapes(const nn::TransformerConfig& c) {
  const int64_t C = c.d_model, F = c.hidden_size, Q = c.n_heads * c.head_dim, KV = c.n_kv_heads * c.head_dim;
  return {
      {"self_attn.q_proj.weight", {Q, C}},       {"self_attn.k_proj.weight", {KV, C}},
      {"self_attn.v_proj.weight", {KV, C}},      {"self_attn.o_proj.weight", {C, Q}},
      {"self_attn.q_norm.weight", {Q}},          {"self_attn.k_norm.weight", {KV}},
      {"post_attention_layernorm.weight", {C}},  {"mlp.gate_proj.weight", {F, C}},
      {"mlp.up_proj.weight", {F, C}},            {"mlp.down_proj.weight", {C, F}},
      {"post_feedforward_layernorm.weight", {C}},
  };
}
std::map<std::string, Shape> hf_top_shapes(const nn::TransformerConfig& c) {
  return {{"model.embed_tokens.weight", {c.vocab_size, c.d_model}},
          {"model.norm.weight", {c.d_model}},
          {"lm_head.weight", {c.vocab_size, c.d_model}}};
}

}  // namespace

namespace {

// Checks one HF tensor — its name maps to OLMo-core, its layer exists, its shape is the config's, its
// dtype is a float one (`dtype` names it for the message) — and returns its OLMo-core name.
std::string checked_olmo_name(const std::string& name, const Shape& shape, bool is_float, const std::string& dtype,
                              const nn::TransformerConfig& base, const std::string& source) {
  const std::string olmo_name = hf_to_olmo_name(name, source);  // unmapped names fail here
  Shape want;
  int64_t layer = 0;
  std::string rest;
  if (split_indexed(name, "model.layers.", &layer, &rest)) {
    HYDRA_CHECK(layer < base.n_layers, source, ": tensor '", name, "' does not belong to a model with ",
                base.n_layers, " layers (num_hidden_layers in config.json)");
    want = hf_block_shapes(base).at(rest);
  } else {
    want = hf_top_shapes(base).at(name);
  }
  HYDRA_CHECK(shape == want, source, ": tensor '", name, "' has shape ", shape_str(shape), " but config.json implies ",
              shape_str(want));
  HYDRA_CHECK(is_float, source, ": tensor '", name, "' is ", dtype, "; expected F32, F16 or BF16 weights");
  return olmo_name;
}

// Every name present was checked (above) and is distinct, so the state is complete iff there are
// 3 + 11 n_layers of them. Otherwise this names the first missing tensor. The search stops early: layers
// 0..k all complete would need 11 (k + 1) tensors, so a missing one appears within the first
// count / 11 + 1 layers (a config claiming thousands of layers costs nothing here).
void check_complete(size_t count, const std::function<bool(const std::string&)>& has, const nn::TransformerConfig& base,
                    const std::string& source) {
  const std::map<std::string, Shape> block = hf_block_shapes(base), top = hf_top_shapes(base);
  for (const auto& [name, shape] : top)
    HYDRA_CHECK(has(name), source, ": missing tensor '", name, "' (shape ", shape_str(shape), ")");
  const int64_t expected_count = 3 + static_cast<int64_t>(block.size()) * base.n_layers;
  if (static_cast<int64_t>(count) == expected_count) return;
  for (int64_t i = 0; i < base.n_layers; ++i)
    for (const auto& [suffix, shape] : block) {
      const std::string name = "model.layers." + std::to_string(i) + "." + suffix;
      HYDRA_CHECK(has(name), source, ": missing tensor '", name, "' (shape ", shape_str(shape), ")");
    }
  HYDRA_ASSERT(false, "tensor count ", count, " != ", expected_count, " yet nothing is missing");
}

}  // namespace

nn::StateDict olmo_state_from_hf(const std::map<std::string, Tensor>& hf_state, const nn::TransformerConfig& base,
                                 const std::string& source) {
  nn::StateDict olmo;
  for (const auto& [name, t] : hf_state)
    olmo[checked_olmo_name(name, t.shape(), t.dtype() == DType::Float32, dtype_name(t.dtype()), base, source)] = t;
  check_complete(hf_state.size(), [&](const std::string& name) { return hf_state.count(name) == 1; }, base, source);
  return olmo;
}

std::unique_ptr<HydraTransformer> load_hf_olmo2(const std::string& hf_dir, int64_t n_heads, int64_t heads_depth,
                                                int64_t vocab_size) {
  const std::string config_path = (fs::path(hf_dir) / "config.json").string();
  const HfOlmo2Config hf = parse_hf_olmo2_config(io::read_file(config_path, "HF config", kMaxHfConfigBytes), config_path);
  const HydraTransformerConfig config = hydra_config_from_hf(hf, n_heads, heads_depth, vocab_size);
  // Every check on the weights is made on the headers, before the model is allocated.
  const std::vector<io::SafetensorsShard> shards = io::open_safetensors_checkpoint(hf_dir);
  struct Source {
    const io::SafetensorsShard* shard;
    const io::SafetensorsTensorInfo* info;
    std::string olmo_name;
  };
  std::map<std::string, Source> by_hf_name;
  for (const io::SafetensorsShard& shard : shards)
    for (const io::SafetensorsTensorInfo& t : shard.header.tensors)
      by_hf_name[t.name] = {&shard, &t,
                            checked_olmo_name(t.name, t.shape, io::safetensors_is_float_weight(t.dtype), t.dtype,
                                              hf.base, hf_dir)};
  check_complete(by_hf_name.size(), [&](const std::string& name) { return by_hf_name.count(name) == 1; }, hf.base,
                 hf_dir);

  // Built without initial values; each tensor is read once, straight into its parameter (widened from
  // F16/BF16 through a small buffer), checked finite there, then copied to the other heads. Memory: the
  // model's parameters, nothing more.
  auto model = config.build("empty");
  std::map<std::string, Tensor*> params;
  for (auto& [name, t] : model->named_parameters()) params[name] = t;
  for (const auto& [hf_name, source] : by_hf_name) {
    const std::vector<std::string> targets =
        HydraTransformer::olmo_to_hydra_names(source.olmo_name, config.trunk_layers, config.n_heads);
    Tensor& first = *params.at(targets[0]);
    float* dst = first.data<float>();
    const int64_t n = shape_numel(source.info->shape);
    io::read_safetensors_floats(source.shard->file, source.shard->header, *source.info, dst);
    check_finite_weights({{hf_name, from_blob(dst, source.info->shape, DType::Float32)}}, hf_dir);
    // Padded vocabulary rows (embeddings, output): padded ids embed to 0 and get logit exactly 0.
    if (n < first.numel()) std::memset(dst + n, 0, sizeof(float) * static_cast<size_t>(first.numel() - n));
    for (size_t k = 1; k < targets.size(); ++k)
      std::memcpy(params.at(targets[k])->data<float>(), dst, sizeof(float) * static_cast<size_t>(first.numel()));
  }
  return model;
}

std::map<std::string, Tensor> hf_state_for_head(const HydraTransformer& model, int64_t head) {
  const HydraTransformerConfig& c = model.config();
  HYDRA_CHECK(head >= 0 && head < c.n_heads, "export: head ", head, " is outside [0, ", c.n_heads, ")");
  HYDRA_CHECK(!model.is_meta(), "export: a meta model has no weights");
  HYDRA_CHECK(!has_lora_adapters(model), "export: the model has LoRA adapters; merge them into the weights first "
              "(merge_lora_adapters, hydra/lora.h)");
  const std::string head_prefix = "heads." + std::to_string(head) + ".blocks.";
  std::map<std::string, Tensor> hf;
  for (const auto& [name, t] : model.state_dict()) {
    int64_t i = 0;
    std::string rest;
    std::string olmo;
    if (split_indexed(name, "trunk.blocks.", &i, &rest)) {
      olmo = "blocks." + std::to_string(i) + "." + rest;
    } else if (split_indexed(name, head_prefix, &i, &rest)) {
      olmo = "blocks." + std::to_string(c.trunk_layers + i) + "." + rest;  // renumbered after the trunk
    } else if (name.starts_with("heads.")) {
      continue;  // another head
    } else if (name.starts_with("trunk.")) {
      olmo = name.substr(6);
    } else {
      olmo = name;  // lm_head.*
    }
    hf[olmo_to_hf_name(olmo)] = t;
  }
  return hf;
}

std::vector<std::string> export_hf_olmo2(const HydraTransformer& model, int64_t head, const std::string& out_dir,
                                         int64_t max_position_embeddings, uint64_t max_shard_bytes) {
  const std::map<std::string, Tensor> hf = hf_state_for_head(model, head);
  const std::string config = hf_olmo2_config_json(model.config().base_config, max_position_embeddings).dump(2) + "\n";
  std::vector<std::string> files;
  io::DirectoryWriter out(out_dir, /*replace=*/false);
  io::write_file_atomic(out.file("config.json"), config);
  // transformers refuses safetensors whose metadata "format" is not pt, tf, flax or mlx.
  files = io::save_sharded_safetensors(out.temp_dir(), hf, max_shard_bytes, {{"format", "pt"}});
  out.commit();
  return files;
}

}  // namespace hydra
