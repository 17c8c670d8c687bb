// `hydra merge-lora`: a model directory with LoRA adapters -> a plain model directory with every adapter
// folded into its weight (W += alpha/rank · B A, hydra/lora.h), loadable and exportable like any other.
//
//   hydra merge-lora runs/head0-lora --out models/head0-merged
//
// The merged model's logits agree with the adapted model's within float32 rounding (the merge is done
// in float64 and rounded once per weight).
#include <filesystem>
#include <iostream>

#include "cli/command.h"
#include "hydra/lora.h"
#include "hydra/model_dir.h"

namespace hydra::cli {

Command add_merge_lora_command(CLI::App& hydra) {
  struct Options {
    std::string model, out;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* app =
      hydra.add_subcommand("merge-lora", "Fold a model's LoRA adapters into its weights, writing a plain model directory");
  app->add_option("model", opt->model, "Model directory with adapters (adapter_config.json + adapters.safetensors)")
      ->required();
  app->add_option("--out", opt->out, "Output model directory (must not exist)")->required();
  return {app, [opt] {
            std::error_code ec;
            HYDRA_CHECK(!std::filesystem::exists(opt->out, ec), "output directory '", opt->out,
                        "' already exists; choose a new path");
            auto model = load_model_dir(opt->model);
            const std::optional<LoraInfo> info = lora_info(*model);
            HYDRA_CHECK(info, "merge-lora: ", opt->model, " has no LoRA adapters (no ", kAdapterConfigFile,
                        "); it is already a plain model directory");
            const int64_t merged = merge_lora_adapters(*model);
            save_model_dir(opt->out, *model);
            std::cout << "merge-lora: folded " << merged << " adapters (rank " << info->config.rank << ", alpha "
                      << info->config.effective_alpha() << ", heads";
            for (int64_t k : info->heads) std::cout << " " << k;
            std::cout << ") into their weights -> " << opt->out << ": config.json, model.safetensors\n";
            return 0;
          }};
}

}  // namespace hydra::cli
