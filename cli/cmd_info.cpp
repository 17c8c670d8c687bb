// `hydra info DIR_or_PRESET`: the config, parameter counts per part, and the memory a forward, a full
// training step and a head-only fine-tuning step need (estimates, from shapes alone: works for
// olmo2-7b through a meta build). A model directory with LoRA adapters also shows them (validated
// against the model, as loading would).
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include "autograd/grad_mode.h"
#include "cli/command.h"
#include "hydra/lora.h"
#include "hydra/model_dir.h"
#include "io/safetensors.h"
#include "tensor/machine_memory.h"

namespace hydra::cli {

namespace {

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return out;
}

// Memory estimates in bytes for batch B and sequence T (float32 everywhere).
//   activations saved per block for backward: x, the attention input/output pieces (q, k, v, attention
//   output, its projection and norm: ~8 C wide) and the SwiGLU pieces (w1 x, w3 x, their product: 3 F
//   wide) per token; the logits and their gradient: N x B x T x V each.
struct Estimate {
  double weights, forward, train_step, head_finetune;
};

Estimate estimate(const HydraTransformerConfig& c, int64_t B, int64_t T) {
  const auto& b = c.base_config;
  const double f = 4;  // bytes per float32
  const double P = static_cast<double>(c.num_params());
  const double tokens = static_cast<double>(B) * T;
  const double per_block_saved = tokens * (8.0 * b.d_model + 3.0 * b.hidden_size) * f;
  const double logits = static_cast<double>(c.n_heads) * tokens * b.vocab_size * f;
  // Forward without grad: one block's working set at a time, plus the trunk output kept for every head,
  // plus all heads' logits (what forward returns).
  const double working = per_block_saved + tokens * b.d_model * f * 2;
  Estimate e;
  e.weights = P * f;
  e.forward = e.weights + working + logits;
  // Full training step (AdamW): weights, gradients, two moments, every block's saved activations,
  // logits and their gradient.
  const double blocks = static_cast<double>(c.trunk_layers + c.n_heads * c.head_layers);
  e.train_step = P * f * 4 + blocks * per_block_saved + 2 * logits;
  // Head-only fine-tuning (trunk and lm_head frozen, one head trained): the trunk runs without a graph;
  // gradients and moments exist for one head only; only that head's blocks save activations; one
  // head's logits and their gradient.
  const double head = static_cast<double>(c.head_params());
  e.head_finetune = P * f + head * f * 3 + working + c.head_layers * per_block_saved + 2 * logits / c.n_heads;
  return e;
}

}  // namespace

Command add_info_command(CLI::App& hydra) {
  struct Options {
    std::string target;
    int64_t batch = 1, seq = 512;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* app = hydra.add_subcommand("info", "Show a model's config, parameter counts and memory needs");
  app->add_option("model", opt->target, "A model directory or a preset name (tiny, small, gpt2, olmo2-1b, olmo2-7b)")
      ->required();
  app->add_option("--batch", opt->batch, "Batch size for the memory estimates (default 1)")->check(integer_in_range(1, 1 << 20));
  app->add_option("--seq", opt->seq, "Sequence length for the memory estimates (default 512)")->check(integer_in_range(1, 1 << 24));
  return {app, [opt] {
            NoGradGuard no_grad;  // nothing here needs a gradient: record no graph
            const bool is_dir = std::filesystem::is_directory(opt->target);
            HydraTransformerConfig config =
                is_dir ? load_model_config(opt->target) : HydraTransformerConfig::preset(opt->target);
            // The weight file's header only (no weights read): every name, shape and dtype must match.
            std::string weights_line;
            if (is_dir) {
              const std::string weights = (std::filesystem::path(opt->target) / "model.safetensors").string();
              const io::SafetensorsHeader header = io::read_safetensors_header(weights);
              check_weights_match_config(header, config, weights);
              const uint64_t data = header.tensors.empty() ? 0 : header.tensors.back().data_end;
              std::map<std::string, int64_t> dtypes;
              for (const auto& t : header.tensors) ++dtypes[t.dtype];
              std::ostringstream line;
              line << "weights: " << weights << " (" << human_bytes(static_cast<double>(header.data_start + data));
              for (const auto& [dtype, n] : dtypes) line << ", " << n << " " << dtype;
              line << " tensors), matching the config\n";
              weights_line = line.str();
            }
            // A meta build: the real module tree, counted, with no parameter memory.
            auto model = config.build("meta");
            if (is_dir) load_lora_files(opt->target, *model);  // meta adapters: counted, not allocated
            const std::optional<LoraInfo> lora = lora_info(*model);
            const auto& b = config.base_config;
            std::cout << "model: " << (is_dir ? opt->target : "preset " + opt->target) << "\n"
                      << "base:  " << b.summary() << "\n"
                      << "hydra: trunk " << config.trunk_layers << " blocks, " << config.n_heads << " heads x "
                      << config.head_layers << " blocks, shared lm_head\n"
                      << weights_line;
            if (lora) {
              std::cout << "lora:  rank " << lora->config.rank << ", alpha " << lora->config.effective_alpha()
                        << ", dropout " << lora->config.dropout << ", targets";
              for (const auto& t : lora->config.targets) std::cout << " " << t;
              std::cout << ": " << lora->linears.size() << " linears in heads";
              for (int64_t k : lora->heads) std::cout << " " << k;
              std::cout << "\n";
            }
            std::cout << "\n"
                      << "parameters\n";
            auto row = [](const std::string& what, int64_t n) {
              std::cout << "  " << std::left << std::setw(26) << what << std::right << std::setw(16) << with_commas(n)
                        << "  " << human_bytes(4.0 * n) << "\n";
            };
            row("embeddings", config.embedding_params());
            row("trunk blocks", config.trunk_layers * config.block_params());
            for (int64_t k = 0; k < config.n_heads; ++k) row("head " + std::to_string(k), config.head_params());
            row("lm_head (norm + w_out)", config.lm_head_params());
            if (lora) row("LoRA adapters", lora->num_params);
            row("total", model->num_params());
            // Everything but the input embeddings, adapters included (OLMo-core's definition).
            row("non-embedding", config.num_non_embedding_params() + (lora ? lora->num_params : 0));
            HYDRA_ASSERT(model->num_params() - (lora ? lora->num_params : 0) == config.num_params(),
                         "built model and config disagree on the count");
            Estimate e = estimate(config, opt->batch, opt->seq);
            std::cout << "\nmemory estimate, float32, batch " << opt->batch << " x seq " << opt->seq << "\n"
                      << "  forward (no grad)         " << human_bytes(e.forward) << "\n"
                      << "  training step (AdamW)     " << human_bytes(e.train_step) << "\n"
                      << "  head-only fine-tuning     " << human_bytes(e.head_finetune) << "\n";
            return 0;
          }};
}

}  // namespace hydra::cli
