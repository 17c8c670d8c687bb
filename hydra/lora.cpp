#include "hydra/lora.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "autograd/grad_mode.h"
#include "hydra/model_dir.h"
#include "io/atomic_file.h"
#include "io/json_file.h"
#include "io/safetensors.h"
#include "tensor/copy.h"

namespace hydra {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kSuffixA = ".lora_A.weight";
constexpr const char* kSuffixB = ".lora_B.weight";
// Far above any useful rank (PEFT's are 4 to 256); only keeps a hostile config's arithmetic honest.
constexpr int64_t kMaxRank = int64_t{1} << 20;

// The head a module path lies in ("heads.2.blocks.0.feed_forward.w1" -> 2); -1 for the trunk and the lm_head.
int64_t head_of(const std::string& path) {
  if (!path.starts_with("heads.")) return -1;
  int64_t k = -1;
  const char* end = path.data() + path.size();
  auto [p, ec] = std::from_chars(path.data() + 6, end, k);
  return ec == std::errc() && p != end && *p == '.' ? k : -1;
}

// Where a linear that may not get an adapter lies, for messages.
std::string place_of(const std::string& path) {
  const int64_t k = head_of(path);
  if (k >= 0) return "head " + std::to_string(k) + ", which is not trained";
  return path.starts_with("lm_head.") ? "the shared lm_head" : "the trunk";
}

template <class T>
std::string join(const std::vector<T>& items, size_t max_items = 8) {
  std::ostringstream os;
  for (size_t i = 0; i < items.size() && i < max_items; ++i) os << (i ? ", " : "") << items[i];
  if (items.size() > max_items) os << ", ... (" << items.size() << " in all)";
  return os.str();
}

std::map<std::string, nn::Linear*> linears_by_path(HydraTransformer& model) {
  std::map<std::string, nn::Linear*> out;
  for (auto& [path, linear] : nn::named_linears(model)) out[path] = linear;
  return out;
}

void check_trained_heads(const HydraTransformer& model, const std::vector<int64_t>& heads) {
  const int64_t n = model.config().n_heads;
  HYDRA_CHECK(!heads.empty(), "LoRA: the list of trained heads is empty (adapters go into trained heads only)");
  std::set<int64_t> seen;
  for (int64_t k : heads) {
    HYDRA_CHECK(k >= 0 && k < n, "LoRA: trained head ", k, " is out of range for a model with ", n, " heads");
    HYDRA_CHECK(seen.insert(k).second, "LoRA: trained head ", k, " is listed twice");
  }
}

// Adds meta adapters of `config` to the linears at `paths`; returns their parameters and names in
// named_parameters() order (per linear: lora_A.weight, then lora_B.weight).
std::pair<std::vector<Tensor*>, std::vector<std::string>> attach_adapters(HydraTransformer& model,
                                                                          const std::vector<std::string>& paths,
                                                                          const nn::LoraConfig& config) {
  auto by_path = linears_by_path(model);
  std::vector<Tensor*> params;
  std::vector<std::string> names;
  for (const std::string& path : paths) {
    nn::Linear& linear = *by_path.at(path);
    nn::add_lora(linear, config.rank, config.effective_alpha(), config.dropout);
    params.push_back(&linear.lora->lora_A.weight);
    params.push_back(&linear.lora->lora_B.weight);
    names.push_back(path + kSuffixA);
    names.push_back(path + kSuffixB);
  }
  return {params, names};
}

// The adapted linears (path, adapter), in module order.
std::vector<std::pair<std::string, const nn::LoraAdapter*>> adapters_of(const HydraTransformer& model) {
  std::vector<std::pair<std::string, const nn::LoraAdapter*>> out;
  // named_linears only reads the module tree; it is non-const because it hands out mutable pointers.
  for (auto& [path, linear] : nn::named_linears(const_cast<HydraTransformer&>(model)))
    if (linear->lora) out.push_back({path, linear->lora.get()});
  return out;
}

}  // namespace

// ---- targets, adding, merging ----

std::vector<std::string> resolve_lora_targets(HydraTransformer& model, const std::vector<std::string>& targets,
                                              const std::vector<int64_t>& trained_heads) {
  check_trained_heads(model, trained_heads);
  HYDRA_CHECK(!targets.empty(), "LoRA: no targets given (e.g. w1,w2,w3)");
  const std::set<int64_t> trained(trained_heads.begin(), trained_heads.end());
  const auto linears = nn::named_linears(model);
  std::set<std::string> selected;
  for (const std::string& pattern : targets) {
    HYDRA_CHECK(!pattern.empty(), "LoRA: an empty target pattern");
    const bool dotted = pattern.find('.') != std::string::npos;
    int64_t matched = 0;
    for (const auto& [path, linear] : linears) {
      const int64_t head = head_of(path);
      if (!dotted) {
        // A linear's own name, searched inside the trained heads only.
        if (head < 0 || !trained.count(head) || !nn::glob_match(pattern, path.substr(path.rfind('.') + 1))) continue;
      } else {
        if (!nn::glob_match(pattern, path)) continue;
        HYDRA_CHECK(head >= 0 && trained.count(head), "LoRA target '", pattern, "' names '", path, "' in ",
                    place_of(path), "; adapters may only go into the trained heads (",
                    head < 0 ? "one there would change every head" : "train that head or narrow the pattern",
                    "; trained heads: ", join(trained_heads), ")");
      }
      selected.insert(path);
      ++matched;
    }
    if (matched > 0) continue;
    if (!dotted)
      throw Error("LoRA target '" + pattern + "' matches no linear in the trained heads (" + join(trained_heads) +
                  "); a linear's own name is one of w_q, w_k, w_v, w_out, w1, w2, w3");
    throw Error("LoRA target '" + pattern + "' matches no linear; dotted patterns are globs over module paths such as '" +
                "heads." + std::to_string(trained_heads.front()) + ".blocks.0.feed_forward.w1'" +
                (pattern.ends_with(".weight") ? " (they name modules, not parameters: drop '.weight')" : ""));
  }
  std::vector<std::string> out;  // module order
  for (const auto& [path, linear] : linears)
    if (selected.count(path)) out.push_back(path);
  return out;
}

std::vector<std::string> add_lora_adapters(HydraTransformer& model, const nn::LoraConfig& config,
                                           const std::vector<int64_t>& trained_heads, Generator& init_gen) {
  config.validate();
  HYDRA_CHECK(!has_lora_adapters(model), "add_lora_adapters: the model already has LoRA adapters (merge them first)");
  const std::vector<std::string> paths = resolve_lora_targets(model, config.targets, trained_heads);
  const bool meta = model.is_meta();  // asked before the (meta until materialized) adapters exist
  auto [params, names] = attach_adapters(model, paths, config);
  if (!meta) {
    nn::materialize_parameters(params);  // their own slab, zeroed: B starts at 0
    auto by_path = linears_by_path(model);
    for (const std::string& path : paths) nn::init_lora_(*by_path.at(path), init_gen);
  }
  for (Tensor* t : params) t->set_requires_grad(true);
  model.lora_targets = config.targets;
  return names;
}

int64_t merge_lora_adapters(HydraTransformer& model) {
  HYDRA_CHECK(!model.is_meta(), "merge_lora_adapters: a meta model has no weights to merge");
  int64_t merged = 0;
  for (auto& [path, linear] : nn::named_linears(model)) {
    if (!linear->lora) continue;
    nn::merge_lora(*linear);
    ++merged;
  }
  model.lora_targets.clear();
  return merged;
}

bool has_lora_adapters(const HydraTransformer& model) { return !adapters_of(model).empty(); }

std::optional<LoraInfo> lora_info(const HydraTransformer& model) {
  const auto adapters = adapters_of(model);
  if (adapters.empty()) return std::nullopt;
  LoraInfo info;
  const nn::LoraAdapter& first = *adapters.front().second;
  info.config.rank = first.rank;
  info.config.alpha = first.alpha;
  info.config.dropout = first.dropout;
  std::set<int64_t> heads;
  for (const auto& [path, a] : adapters) {
    HYDRA_CHECK(a->rank == first.rank && a->alpha == first.alpha && a->dropout == first.dropout,
                "LoRA: the adapters of '", adapters.front().first, "' (rank ", first.rank, ", alpha ", first.alpha,
                ", dropout ", first.dropout, ") and '", path, "' (rank ", a->rank, ", alpha ", a->alpha, ", dropout ",
                a->dropout, ") differ; one model holds one LoRA configuration");
    info.linears.push_back(path);
    heads.insert(head_of(path));
    info.num_params += a->lora_A.weight.numel() + a->lora_B.weight.numel();
  }
  info.heads.assign(heads.begin(), heads.end());
  // Adapters added by hand (nn::add_lora) have no recorded patterns: their full paths select them.
  info.config.targets = model.lora_targets.empty() ? info.linears : model.lora_targets;
  return info;
}

int64_t set_only_lora_trainable(HydraTransformer& model) {
  int64_t n = 0;
  for (auto& [name, t] : model.named_parameters()) {
    const bool adapter = is_lora_parameter(name);
    t->set_requires_grad(adapter);
    n += adapter;
  }
  HYDRA_CHECK(n > 0, "set_only_lora_trainable: the model has no LoRA adapters (add_lora_adapters first)");
  return n;
}

bool is_lora_parameter(const std::string& name) { return name.ends_with(kSuffixA) || name.ends_with(kSuffixB); }

nn::StateDict base_state_dict(const HydraTransformer& model) {
  nn::StateDict out = model.state_dict();
  std::erase_if(out, [](const auto& kv) { return is_lora_parameter(kv.first); });
  return out;
}

nn::StateDict lora_state_dict(const HydraTransformer& model) {
  nn::StateDict out = model.state_dict();
  std::erase_if(out, [](const auto& kv) { return !is_lora_parameter(kv.first); });
  return out;
}

// ---- adapter_config.json ----

json adapter_config_json(const LoraInfo& info) {
  return {{"format", kAdapterFormat},
          {"format_version", kAdapterFormatVersion},
          {"rank", info.config.rank},
          {"alpha", info.config.effective_alpha()},
          {"dropout", info.config.dropout},
          {"targets", info.config.targets},
          {"linears", info.linears}};
}

LoraInfo parse_adapter_config(const json& j, const std::string& file) {
  HYDRA_CHECK(j.is_object(), file, ": expected a JSON object, got ", j.type_name());
  static const std::set<std::string> kFields = {"format", "format_version", "rank", "alpha",
                                                "dropout", "targets", "linears"};
  for (const auto& [key, value] : j.items())
    HYDRA_CHECK(kFields.count(key), file, ": unknown field '", key, "' (a LoRA adapter config has ",
                join(std::vector<std::string>(kFields.begin(), kFields.end())), ")");
  auto need = [&](const char* name) -> const json& {
    auto it = j.find(name);
    HYDRA_CHECK(it != j.end(), file, ": missing field '", name, "'");
    return *it;
  };
  auto strings = [&](const char* name) {
    const json& v = need(name);
    HYDRA_CHECK(v.is_array() && !v.empty(), file, ": field '", name, "' must be a non-empty array of strings, got ",
                io::json_excerpt(v));
    std::vector<std::string> out;
    for (const json& s : v) {
      HYDRA_CHECK(s.is_string() && !s.get_ref<const std::string&>().empty(), file, ": field '", name,
                  "' must hold non-empty strings, got ", io::json_excerpt(s));
      out.push_back(s.get<std::string>());
    }
    return out;
  };
  const json& format = need("format");
  HYDRA_CHECK(format == kAdapterFormat, file, ": field 'format' is ", io::json_excerpt(format), "; expected \"", kAdapterFormat, "\"");
  const json& version = need("format_version");
  HYDRA_CHECK(version.is_number_integer() && version == kAdapterFormatVersion, file, ": format_version ", io::json_excerpt(version),
              " is not supported (this Hydra reads version ", kAdapterFormatVersion, ")");
  LoraInfo info;
  const json& rank = need("rank");
  HYDRA_CHECK(rank.is_number_integer() && rank >= 1 && rank <= kMaxRank, file, ": field 'rank' must be an integer from 1 to ",
              kMaxRank, ", got ", io::json_excerpt(rank));
  info.config.rank = rank.get<int64_t>();
  const json& alpha = need("alpha");
  HYDRA_CHECK(alpha.is_number() && alpha.get<double>() > 0, file, ": field 'alpha' must be a number > 0, got ",
              io::json_excerpt(alpha));
  info.config.alpha = alpha.get<double>();
  const json& dropout = need("dropout");
  HYDRA_CHECK(dropout.is_number() && dropout.get<double>() >= 0 && dropout.get<double>() < 1, file,
              ": field 'dropout' must be a number in [0, 1), got ", io::json_excerpt(dropout));
  info.config.dropout = dropout.get<double>();
  info.config.targets = strings("targets");
  info.linears = strings("linears");
  std::set<std::string> seen;
  for (const std::string& l : info.linears)
    HYDRA_CHECK(seen.insert(l).second, file, ": field 'linears' lists '", l, "' twice");
  return info;
}

// ---- files ----

void write_lora_files(const std::string& dir, const HydraTransformer& model) {
  const std::optional<LoraInfo> info = lora_info(model);
  if (!info) return;
  io::save_safetensors((fs::path(dir) / kAdapterWeightsFile).string(), lora_state_dict(model),
                       {{"format", kAdapterFormat}});
  io::write_file_atomic((fs::path(dir) / kAdapterConfigFile).string(), adapter_config_json(*info).dump(2) + "\n");
}

std::vector<std::string> check_adapter_config(HydraTransformer& model, const LoraInfo& info, const std::string& file) {
  const auto by_path = linears_by_path(model);
  std::set<int64_t> head_set;
  for (const std::string& l : info.linears) {
    HYDRA_CHECK(by_path.count(l), file, ": field 'linears' names '", l,
                "', which is not a linear of this model (paths look like 'heads.0.blocks.0.feed_forward.w1'; the model has ",
                model.config().n_heads, " heads of ", model.config().head_layers, " blocks)");
    HYDRA_CHECK(head_of(l) >= 0, file, ": field 'linears' names '", l, "' in ", place_of(l),
                "; adapters may only go into heads");
    head_set.insert(head_of(l));
  }
  const std::vector<int64_t> heads(head_set.begin(), head_set.end());
  std::vector<std::string> selected;
  try {
    selected = resolve_lora_targets(model, info.config.targets, heads);
  } catch (const Error& e) {
    throw Error(file + ": " + e.what());
  }
  const std::set<std::string> listed(info.linears.begin(), info.linears.end());
  HYDRA_CHECK(std::set<std::string>(selected.begin(), selected.end()) == listed, file, ": 'targets' [",
              join(info.config.targets), "] select ", selected.size(), " linears in heads ", join(heads), " (",
              join(selected, 3), ") but 'linears' lists ", listed.size(), " (", join(info.linears, 3), ")");
  return selected;
}

bool load_lora_files(const std::string& dir, HydraTransformer& model) {
  const std::string config_path = (fs::path(dir) / kAdapterConfigFile).string();
  const std::string weights_path = (fs::path(dir) / kAdapterWeightsFile).string();
  std::error_code ec;
  const bool has_weights = fs::exists(weights_path, ec);
  if (!fs::exists(config_path, ec)) {
    HYDRA_CHECK(!has_weights, weights_path, ": LoRA adapter weights without ", kAdapterConfigFile,
                " next to them; restore that file, or delete the weights to use the base model alone");
    return false;
  }
  const LoraInfo info = parse_adapter_config(io::read_json_file(config_path, "LoRA adapter config", kMaxConfigBytes),
                                             config_path);
  HYDRA_CHECK(!has_lora_adapters(model), "load_lora_files: the model already has LoRA adapters");

  const std::vector<std::string> selected = check_adapter_config(model, info, config_path);
  const auto by_path = linears_by_path(model);

  // adapters.safetensors holds exactly the expected tensors, with the shapes rank and each linear imply.
  HYDRA_CHECK(has_weights, config_path, " is present but ", weights_path, " is missing");
  const auto tensors = io::load_safetensors(weights_path);
  std::map<std::string, Shape> expected;
  for (const std::string& l : info.linears) {
    const nn::Linear& linear = *by_path.at(l);
    expected[l + kSuffixA] = {info.config.rank, linear.in_features};
    expected[l + kSuffixB] = {linear.out_features, info.config.rank};
  }
  std::vector<std::string> missing, extra;
  for (const auto& [name, shape] : expected)
    if (!tensors.count(name)) missing.push_back(name);
  for (const auto& [name, t] : tensors)
    if (!expected.count(name)) extra.push_back(name);
  HYDRA_CHECK(missing.empty(), weights_path, ": missing adapter tensor", missing.size() > 1 ? "s " : " ", join(missing, 4),
              " (", kAdapterConfigFile, " lists ", info.linears.size(), " adapted linears)");
  HYDRA_CHECK(extra.empty(), weights_path, ": unexpected tensor", extra.size() > 1 ? "s " : " ", join(extra, 4),
              " (not an adapter of a linear listed in ", kAdapterConfigFile, ")");
  for (const auto& [name, shape] : expected) {
    const Tensor& t = tensors.at(name);
    HYDRA_CHECK(t.shape() == shape, weights_path, ": tensor '", name, "' has shape ", shape_str(t.shape()),
                " but rank ", info.config.rank, " and linear '", name.substr(0, name.size() - std::strlen(kSuffixA)),
                "' need ", shape_str(shape));
    HYDRA_CHECK(is_floating(t.dtype()), weights_path, ": tensor '", name, "' is ", dtype_name(t.dtype()),
                "; expected F32 (or F16, BF16)");
  }

  const bool meta = model.is_meta();  // asked before the (meta until materialized) adapters exist
  auto [params, names] = attach_adapters(model, selected, info.config);  // module order, whatever the file's
  if (!meta) {
    nn::materialize_parameters(params);
    NoGradGuard no_grad;
    for (size_t i = 0; i < params.size(); ++i) kernels::copy_into(*params[i], tensors.at(names[i]));
    nn::StateDict loaded;  // NaN and infinite weights are refused here as in the base weights
    for (size_t i = 0; i < params.size(); ++i) loaded[names[i]] = *params[i];
    check_finite_weights(loaded, weights_path);
  }
  model.lora_targets = info.config.targets;
  return true;
}

}  // namespace hydra
