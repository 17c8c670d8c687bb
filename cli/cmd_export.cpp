// `hydra export`: one head of a Hydra model directory -> a standard HuggingFace OLMo-2 directory
// (config.json with architectures ["Olmo2ForCausalLM"], model_type "olmo2"; model.safetensors, or shards
// with model.safetensors.index.json above --max-shard-size).
//
//   hydra export models/olmo2-1b --head 2 --out hf/olmo2-1b-head2
//
// The exported model is embeddings + trunk blocks + head K's blocks (renumbered after the trunk) + final
// norm + output layer: exactly what head K computes. Converting it back gives bit-identical tensors.
// A model with LoRA adapters is merged first (as `hydra merge-lora` does), so the HF weights include them.
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "hydra/hf_olmo2.h"
#include "hydra/lora.h"
#include "hydra/model_dir.h"

namespace hydra::cli {

Command add_export_command(CLI::App& hydra) {
  struct Options {
    std::string model, out;
    int64_t head = -1, max_position_embeddings = 4096;
    int64_t max_shard_bytes = static_cast<int64_t>(kHfDefaultMaxShardBytes);
  };
  auto opt = std::make_shared<Options>();
  CLI::App* app = hydra.add_subcommand(
      "export", "Write one head of a model as a HuggingFace OLMo-2 directory (LoRA adapters are merged into the weights first)");
  app->add_option("model", opt->model, "Model directory (config.json + model.safetensors)")->required();
  app->add_option("--head", opt->head, "The head K to export")->required()->check(integer_in_range(0, 1023));
  app->add_option("--out", opt->out, "Output HF directory (must not exist)")->required();
  app->add_option("--max-shard-size", opt->max_shard_bytes,
                  "Bytes of tensor data per safetensors file before sharding (default 5000000000, HF's 5GB)")
      ->check(integer_in_range(1, 1LL << 50));
  app->add_option("--max-position-embeddings", opt->max_position_embeddings,
                  "config.json's max_position_embeddings (Hydra's RoPE has no limit; default 4096, OLMo-2's)")
      ->check(integer_in_range(1, 1LL << 31));
  return {app, [opt] {
            std::error_code ec;
            HYDRA_CHECK(!std::filesystem::exists(opt->out, ec), "output directory '", opt->out,
                        "' already exists; choose a new path");
            const HydraTransformerConfig config = load_model_config(opt->model);
            HYDRA_CHECK(opt->head < config.n_heads, "export: --head ", opt->head, " is outside [0, ", config.n_heads,
                        ") (", opt->model, " has ", config.n_heads, " heads)");
            auto model = load_model_dir(opt->model);
            // HF OLMo-2 has no place for adapters: fold them in (only the exported head's matter).
            if (const int64_t merged = merge_lora_adapters(*model); merged > 0)
              std::cout << "export: merged " << merged << " LoRA adapters into their weights\n";
            const auto files = export_hf_olmo2(*model, opt->head, opt->out, opt->max_position_embeddings,
                                               static_cast<uint64_t>(opt->max_shard_bytes));
            std::cout << "export: head " << opt->head << " (" << config.trunk_layers << " trunk + "
                      << config.head_layers << " head blocks = " << config.base_config.n_layers << " layers) -> "
                      << opt->out << ": config.json";
            for (const auto& f : files) std::cout << ", " << f;
            std::cout << "\n";
            return 0;
          }};
}

}  // namespace hydra::cli
