// `hydra info DIR_or_PRESET`: the config, parameter counts per part, and the memory a forward pass, an
// evaluation, a full training step, a head-only fine-tuning step and a LoRA step need at their peak
// (estimates from shapes alone, train/memory_estimate.h: works for olmo2-7b through meta builds). A
// model directory with LoRA adapters also shows them (validated against the model, as loading would).
#include <algorithm>
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
#include "tensor/random.h"
#include "tensor/machine_memory.h"
#include "train/memory_estimate.h"

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

struct InfoOptions {
  std::string target;
  int64_t batch = 1, seq = 512, grad_accum = 1, lora_rank = 8;
  std::string train_heads = "0", lora_targets = "w1,w2,w3", optimizer = "adamw";
};

// One row of the memory table: what, then weights, gradients, optimizer state, activations, total.
void print_estimate_row(const std::string& what, const train::MemoryEstimate& e) {
  auto cell = [](double bytes) { return bytes > 0 ? human_bytes(bytes) : std::string("-"); };
  std::cout << "  " << std::left << std::setw(34) << what << std::right;
  for (double bytes : {e.weights, e.gradients, e.optimizer, e.activations, e.total()})
    std::cout << std::setw(13) << cell(bytes);
  std::cout << "\n";
}

// The memory table: a forward pass, an evaluation, then training steps as `hydra train` would set them
// up (every parameter, the --train-heads alone, LoRA adapters on them), each estimated on a meta model
// whose parameters train as the trainer would make them (train/memory_estimate.h).
void print_memory_estimates(const HydraTransformerConfig& config, const InfoOptions& opt) {
  const std::vector<int64_t> heads = parse_int_list(opt.train_heads, "--train-heads");
  for (size_t i = 0; i < heads.size(); ++i) {
    HYDRA_CHECK(heads[i] >= 0 && heads[i] < config.n_heads, "--train-heads: head ", heads[i],
                " is out of range (the model has ", config.n_heads, " heads: 0 to ", config.n_heads - 1, ")");
    HYDRA_CHECK(std::find(heads.begin(), heads.begin() + static_cast<std::ptrdiff_t>(i), heads[i]) ==
                    heads.begin() + static_cast<std::ptrdiff_t>(i),
                "--train-heads: head ", heads[i], " is listed twice");
  }
  nn::LoraConfig lora;
  lora.rank = opt.lora_rank;
  lora.targets = split_commas(opt.lora_targets);
  lora.validate();
  train::TrainingShape shape;
  shape.batch = opt.batch;
  shape.seq = opt.seq;
  shape.grad_accum = opt.grad_accum;
  shape.optimizer = train::parse_optimizer_kind(opt.optimizer);
  const std::string optimizer = shape.optimizer == train::OptimizerKind::AdamW ? "AdamW" : "SGD";
  const std::string head_list = "head" + std::string(heads.size() > 1 ? "s " : " ") + opt.train_heads;

  std::cout << "\nmemory estimate, float32, batch " << opt.batch << " x seq " << opt.seq
            << (opt.grad_accum > 1 ? " x " + std::to_string(opt.grad_accum) + " micro-batches" : "")
            << " (at the peak; docs/training.md, 'Memory')\n"
            << "  " << std::setw(34) << "" << std::setw(13) << "weights" << std::setw(13) << "gradients"
            << std::setw(13) << "optimizer" << std::setw(13) << "activations" << std::setw(13) << "total" << "\n";
  print_estimate_row("forward (no grad, every head)", train::estimate_forward(config, opt.batch, opt.seq));
  print_estimate_row("evaluation (hydra eval)", train::estimate_evaluation(config, opt.batch, opt.seq));
  {
    auto model = config.build("meta");
    for (int64_t k = 0; k < config.n_heads; ++k) shape.heads.push_back(k);
    print_estimate_row("training step (" + optimizer + ")", train::estimate_training_step(*model, shape));
  }
  shape.heads = heads;
  std::sort(shape.heads.begin(), shape.heads.end());
  {
    auto model = config.build("meta");
    model->set_trainable("*", false);
    for (int64_t k : heads) model->set_trainable("heads." + std::to_string(k) + ".*", true);
    print_estimate_row("fine-tuning " + head_list + " (" + optimizer + ")",
                       train::estimate_training_step(*model, shape));
  }
  {
    auto model = config.build("meta");
    Generator unused(0);  // a meta model's adapters are not initialised
    add_lora_adapters(*model, lora, shape.heads, unused);
    set_only_lora_trainable(*model);
    print_estimate_row("LoRA r" + std::to_string(lora.rank) + " " + opt.lora_targets + ", " + head_list,
                       train::estimate_training_step(*model, shape));
  }
}

}  // namespace

Command add_info_command(CLI::App& hydra) {
  auto opt = std::make_shared<InfoOptions>();
  CLI::App* app = hydra.add_subcommand("info", "Show a model's config, parameter counts and memory needs");
  app->add_option("model", opt->target, "A model directory or a preset name (tiny, small, gpt2, olmo2-1b, olmo2-7b)")
      ->required();
  app->add_option("--batch", opt->batch, "Batch size for the memory estimates (default 1)")->check(integer_in_range(1, 1 << 20));
  app->add_option("--seq", opt->seq, "Sequence length for the memory estimates (default 512)")->check(integer_in_range(1, 1 << 24));
  app->add_option("--grad-accum", opt->grad_accum, "Micro-batches per step for the training estimates (default 1)")
      ->check(integer_in_range(1, 1 << 20));
  app->add_option("--train-heads", opt->train_heads, "Heads the fine-tuning estimates train, e.g. 0,2 (default 0)");
  app->add_option("--lora-rank", opt->lora_rank, "LoRA rank for the LoRA estimate (default 8)")
      ->check(integer_in_range(1, 1 << 20));
  app->add_option("--lora-targets", opt->lora_targets, "LoRA targets for the LoRA estimate (default w1,w2,w3)");
  app->add_option("--optimizer", opt->optimizer, "Optimizer of the training estimates: adamw or sgd (default adamw)");
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
            print_memory_estimates(config, *opt);
            return 0;
          }};
}

}  // namespace hydra::cli
