#include "hydra/hydra_transformer.h"

#include <algorithm>
#include <charconv>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "nn/init.h"
#include "nn/lora.h"
#include "tensor/copy.h"
#include "tensor/gemm_small.h"
#include "tensor/machine_memory.h"
#include "tensor/parallel.h"

namespace hydra {

// ---- trunk and heads ----

Trunk::Trunk(const HydraTransformerConfig& config)
    : embeddings(config.base_config.vocab_size, config.base_config.d_model) {
  register_module("embeddings", embeddings);
  for (int64_t i = 0; i < config.trunk_layers; ++i) {
    blocks.push_back(std::make_unique<nn::TransformerBlock>(config.base_config));
    register_module("blocks." + std::to_string(i), *blocks.back());
  }
}

Tensor Trunk::forward(const Tensor& input_ids) {
  Tensor h = embeddings.forward(input_ids);  // shape: (B, T, C)
  for (auto& block : blocks) h = block->forward(h);
  return h;
}

Head::Head(const HydraTransformerConfig& config) {
  for (int64_t j = 0; j < config.head_layers; ++j) {
    blocks.push_back(std::make_unique<nn::TransformerBlock>(config.base_config));
    register_module("blocks." + std::to_string(j), *blocks.back());
  }
}

Tensor Head::forward(const Tensor& hidden) {
  Tensor h = hidden;
  for (auto& block : blocks) h = block->forward(h);
  return h;
}

// ---- the model ----

namespace {

// Everything build() refuses, checked before a single module exists: the config's rules and limits, the
// device name, and (when parameters get memory) that the slab fits in this machine.
const HydraTransformerConfig& checked(const HydraTransformerConfig& config, const std::string& init_device) {
  config.validate();
  HYDRA_CHECK(init_device == "cpu" || init_device == "empty" || init_device == "meta", "build: init_device '",
              init_device, "' is not supported (expected \"cpu\", \"empty\" or \"meta\")");
  if (init_device != "meta")
    check_fits_in_memory(static_cast<uint64_t>(config.slab_bytes()),
                         detail::concat_message("building the model (", config.num_params(), " float32 parameters)"));
  return config;
}

bool all_distinct(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  return std::adjacent_find(v.begin(), v.end()) == v.end();
}

}  // namespace

bool HydraTransformer::heads_draw_dropout_masks(const std::vector<int64_t>& selected) {
  for (int64_t k : selected)
    if (nn::draws_dropout_masks(*heads[static_cast<size_t>(k)])) return true;
  return false;
}

HydraTransformer::HydraTransformer(const HydraTransformerConfig& config, const std::string& init_device,
                                   uint64_t seed)
    : trunk(checked(config, init_device)),
      lm_head(config.base_config.d_model, config.base_config.vocab_size, config.base_config.norm_eps),
      config_(config) {
  register_module("trunk", trunk);
  for (int64_t k = 0; k < config.n_heads; ++k) {
    heads.push_back(std::make_unique<Head>(config));
    register_module("heads." + std::to_string(k), *heads.back());
  }
  register_module("lm_head", lm_head);
  // initialize() writes every parameter, so neither device zero-fills the slab first (untouched pages
  // cost no memory, which is what makes "empty" + loading cost one copy of the weights).
  if (init_device != "meta") nn::materialize_parameters(*this, /*zero_fill=*/false);
  if (init_device == "cpu") initialize(seed);
}

bool HydraTransformer::is_meta() const {
  for (const auto& [name, t] : named_parameters())
    if (t->is_meta()) return true;
  return false;
}

// OLMo-core's init (docs/model.md, 'Initialisation'), drawing in its order: embeddings; per block q, k, v, out,
// then w1, w3, w2; then lm_head.w_out. Norm weights are ones. One generator for the whole model, so
// every head gets its own draw and heads trained from scratch can differ.
void HydraTransformer::initialize(uint64_t seed) {
  Generator gen(seed);
  const double std = config_.base_config.init_std;
  nn::init_normal_(trunk.embeddings.weight, gen, std);
  auto init_block = [&](nn::TransformerBlock& b) {
    for (Tensor* w : {&b.attention.w_q.weight, &b.attention.w_k.weight, &b.attention.w_v.weight,
                      &b.attention.w_out.weight, &b.feed_forward.w1.weight, &b.feed_forward.w3.weight,
                      &b.feed_forward.w2.weight})
      nn::init_normal_(*w, gen, std);
  };
  for (auto& b : trunk.blocks) init_block(*b);
  for (auto& head : heads)
    for (auto& b : head->blocks) init_block(*b);
  nn::init_normal_(lm_head.w_out.weight, gen, std);
  for (auto& [name, t] : named_parameters())
    if (name.ends_with("norm.weight")) nn::init_ones_(*t);
}

std::vector<int64_t> HydraTransformer::select_heads(const HeadIndices& head_indices, const char* op) const {
  const int64_t n = config_.n_heads;
  if (!head_indices) {
    std::vector<int64_t> all(n);
    for (int64_t k = 0; k < n; ++k) all[k] = k;
    return all;
  }
  HYDRA_CHECK(!head_indices->empty(), op, ": head_indices is empty (pass none for all ", n, " heads)");
  for (int64_t k : *head_indices)
    HYDRA_CHECK(k >= 0 && k < n, op, ": head index ", k, " is out of range for a model with ", n, " heads");
  return *head_indices;
}

Tensor HydraTransformer::forward_trunk(const Tensor& input_ids) {
  HYDRA_CHECK(input_ids.dim() == 2, "forward_trunk: input_ids must be (batch, seq), got shape ",
              shape_str(input_ids.shape()));
  ++trunk_calls_;
  return trunk.forward(input_ids);
}

std::pair<Tensor, std::vector<Tensor>> HydraTransformer::run_heads(const Tensor& h,
                                                                   const std::vector<int64_t>& selected,
                                                                   bool last_token_only) {
  std::vector<Tensor> logits, hidden;
  const int64_t B = h.size(0), T = h.size(1), T_out = last_token_only ? 1 : T;
  const int64_t n = static_cast<int64_t>(selected.size()), V = config_.base_config.vocab_size;
  const bool graph = grad_mode_enabled();
  hidden.resize(selected.size());
  auto run_head = [&](size_t i) {
    Tensor y = heads[static_cast<size_t>(selected[i])]->forward(h);  // shape: (B, T, C)
    if (last_token_only) y = narrow(y, 1, T - 1, 1);                 // shape: (B, 1, C)
    hidden[i] = y;
  };
  // Decoding runs the heads side by side, one per thread. Its products have a row or a few, which
  // one thread streams at about its share of the memory bandwidth, and between two products each
  // layer has small operations that run on one thread: run one head at a time and the other threads
  // wait through those; run the heads at once and each thread keeps reading weights (measured:
  // bench/README.md, 'What closed part of the gap'). Every operation's result is independent
  // of which thread runs it, so the bits are the same. A head selected twice runs in turn: its KV
  // cache is advanced once per run. Heads whose adapters draw dropout masks also run in turn: they
  // share one generator, and the masks must be drawn in head order.
  if (!graph && n > 1 && B * T <= kernels::kSmallGemmRows && all_distinct(selected) &&
      !heads_draw_dropout_masks(selected)) {
    parallel_for(0, n, 1, [&](int64_t lo, int64_t hi) {
      NoGradGuard no_grad;  // grad mode is per thread: the worker threads must not record either
      for (int64_t i = lo; i < hi; ++i) run_head(static_cast<size_t>(i));
    });
  } else {
    for (size_t i = 0; i < selected.size(); ++i) run_head(i);
  }
  // Decoding (no graph, a few rows per head): the heads' final rows go through the lm_head as one
  // product, so its weight (the largest matrix) is read from memory once per token instead of once per
  // head. The few-row kernel gives each row the same bits whatever the number of rows
  // (tensor/gemm_small.h), so the logits equal those of one product per head.
  if (!graph && n * B * T_out <= kernels::kSmallGemmRows) {
    Tensor stacked = n == 1 ? hidden[0] : concat(hidden, 0);     // shape: (n*B, T_out, C)
    return {view(lm_head.forward(stacked), {n, B, T_out, V}), hidden};  // shape: (n, B, T_out, V)
  }
  // Without a graph each head's logits go straight into their slice of the result, so the logits exist
  // once (plus one head's), not twice as a stack of the heads' logits would hold them. With a graph,
  // stack keeps the backward path to every head.
  Tensor out;
  if (!graph) out = empty({n, B, T_out, V});
  for (int64_t i = 0; i < n; ++i) {
    Tensor head_logits = lm_head.forward(hidden[static_cast<size_t>(i)]);  // shape: (B, T_out, V)
    if (graph)
      logits.push_back(head_logits);
    else
      kernels::copy_into(select(out, 0, i), head_logits);
  }
  return {graph ? stack(logits, 0) : out, hidden};      // shape: (n_selected, B, T_out, V)
}

Tensor HydraTransformer::forward_heads(const Tensor& hidden_states, const HeadIndices& head_indices,
                                       const std::optional<Tensor>& residual, bool last_token_only) {
  std::vector<int64_t> selected = select_heads(head_indices, "forward_heads");
  HYDRA_CHECK(hidden_states.dim() == 3 && hidden_states.size(2) == config_.base_config.d_model,
              "forward_heads: hidden_states must be (batch, seq, ", config_.base_config.d_model, "), got shape ",
              shape_str(hidden_states.shape()));
  Tensor h = hidden_states;
  if (residual) {
    HYDRA_CHECK(residual->shape() == hidden_states.shape(), "forward_heads: residual shape ",
                shape_str(residual->shape()), " differs from hidden_states shape ", shape_str(hidden_states.shape()));
    h = add(hidden_states, *residual);  // once, out of place: every head sees the same sum
  }
  return run_heads(h, selected, last_token_only).first;
}

Tensor HydraTransformer::forward(const Tensor& input_ids, const std::optional<Tensor>& residual,
                                 const HeadIndices& head_indices, bool last_token_only) {
  select_heads(head_indices, "forward");  // reject bad indices before running the trunk
  return forward_heads(forward_trunk(input_ids), head_indices, residual, last_token_only);
}

std::pair<Tensor, Tensor> HydraTransformer::residual_forward(const Tensor& input_ids,
                                                             const std::vector<int64_t>& hidden_head_indices,
                                                             const HeadIndices& head_indices, bool last_token_only) {
  std::vector<int64_t> selected = select_heads(head_indices, "residual_forward");
  HYDRA_CHECK(!hidden_head_indices.empty(), "residual_forward: hidden_head_indices is empty");
  for (int64_t k : hidden_head_indices)
    HYDRA_CHECK(std::find(selected.begin(), selected.end(), k) != selected.end(), "residual_forward: hidden head ",
                k, " is not among the selected heads");
  auto [logits, hidden] = run_heads(forward_trunk(input_ids), selected, last_token_only);
  std::vector<Tensor> picked;
  for (int64_t k : hidden_head_indices) {
    size_t first = std::find(selected.begin(), selected.end(), k) - selected.begin();
    picked.push_back(hidden[first]);
  }
  return {logits, stack(picked, 0)};  // shape: (len(hidden_head_indices), B, T_out, C)
}

// ---- KV cache ----

std::vector<nn::Attention*> HydraTransformer::cached_attentions(bool omit_last) {
  std::vector<nn::Attention*> out;
  for (auto& b : trunk.blocks) out.push_back(&b->attention);
  const size_t n = heads.size() - (omit_last ? 1 : 0);
  for (size_t k = 0; k < n; ++k)
    for (auto& b : heads[k]->blocks) out.push_back(&b->attention);
  return out;
}

void HydraTransformer::init_kv_cache(int64_t batch_size, int64_t max_seq_len, bool omit_last) {
  for (nn::Attention* a : cached_attentions(omit_last)) a->init_kv_cache(batch_size, max_seq_len);
  if (omit_last)
    for (auto& b : heads.back()->blocks) b->attention.free_kv_cache();
}

// A head left cacheless by init_kv_cache(omit_last=true) is skipped, so reset/rollback/sync with
// omit_last=false still work after it.
void HydraTransformer::reset_kv_cache(bool omit_last) {
  for (nn::Attention* a : cached_attentions(omit_last))
    if (a->has_kv_cache()) a->reset_kv_cache();
}

void HydraTransformer::rollback_kv_cache(int64_t n, bool omit_last) {
  for (nn::Attention* a : cached_attentions(omit_last))
    if (a->has_kv_cache()) a->rollback_kv_cache(n);
}

void HydraTransformer::sync_kv_cache(int64_t target_length, bool omit_last) {
  for (nn::Attention* a : cached_attentions(omit_last))
    if (a->has_kv_cache()) a->sync_kv_cache(target_length);
}

void HydraTransformer::free_kv_cache() {
  for (nn::Attention* a : cached_attentions(false)) a->free_kv_cache();
}

// ---- loading OLMo-core weights ----

std::vector<std::string> HydraTransformer::olmo_to_hydra_names(const std::string& name, int64_t trunk_layers,
                                                               int64_t n_heads) {
  if (name.starts_with("lm_head.")) return {name};
  if (!name.starts_with("blocks.")) return {"trunk." + name};
  const size_t dot = name.find('.', 7);
  int64_t i = -1;
  const char* first = name.data() + 7;
  const char* last = name.data() + (dot == std::string::npos ? name.size() : dot);
  auto [end, ec] = std::from_chars(first, last, i);
  HYDRA_CHECK(dot != std::string::npos && ec == std::errc() && end == last && i >= 0,
              "load_olmo_state: malformed block name '", name, "' (expected blocks.<index>.<parameter>)");
  const std::string rest = name.substr(dot);  // ".attention.w_q.weight"
  if (i < trunk_layers) return {"trunk.blocks." + std::to_string(i) + rest};
  std::vector<std::string> names;
  for (int64_t k = 0; k < n_heads; ++k)
    names.push_back("heads." + std::to_string(k) + ".blocks." + std::to_string(i - trunk_layers) + rest);
  return names;
}

void HydraTransformer::load_olmo_state(HydraTransformer& model, const nn::StateDict& olmo_state, int64_t trunk_layers,
                                       int64_t vocab_size) {
  const int64_t n_heads = model.config().n_heads;
  nn::StateDict mapped;
  for (const auto& [name, value] : olmo_state) {
    Tensor t = value;
    if (name == "embeddings.weight" || name == "lm_head.w_out.weight") {
      const int64_t rows = t.size(0);
      HYDRA_CHECK(rows <= vocab_size, "load_olmo_state: '", name, "' has ", rows, " rows, more than vocab_size ",
                  vocab_size);
      if (rows < vocab_size) {
        // Padded ids embed to 0 and get logit exactly 0.
        Tensor padded = zeros({vocab_size, t.size(1)}, t.dtype());
        kernels::copy_into(narrow(padded, 0, 0, rows), t);
        t = padded;
      }
    }
    // load_state_dict copies: every head its own weights.
    for (const std::string& hydra_name : olmo_to_hydra_names(name, trunk_layers, n_heads)) mapped[hydra_name] = t;
  }
  model.load_state_dict(mapped);
}

}  // namespace hydra
