// `hydra init`: a freshly initialised model directory from a preset or a config file.
//
//   hydra init --preset tiny --out models/tiny
//   hydra init --config my_config.json --n-heads 5 --heads-depth 3 --seed 7 --out models/mine
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "autograd/grad_mode.h"
#include "cli/command.h"
#include "hydra/model_dir.h"
#include "io/json_file.h"

namespace hydra::cli {

Command add_init_command(CLI::App& hydra) {
  struct Options {
    std::string preset, config_file, out;
    int64_t n_heads = 0, heads_depth = 0, vocab_size = 0;
    uint64_t seed = 0;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* app = hydra.add_subcommand("init", "Write a freshly initialised model directory (config.json + model.safetensors)");
  auto* preset = app->add_option("--preset", opt->preset, "Named preset: tiny, small, gpt2, olmo2-1b, olmo2-7b");
  auto* config = app->add_option("--config", opt->config_file, "A config.json (HydraTransformerConfig) to start from");
  preset->excludes(config);
  app->add_option("--n-heads", opt->n_heads, "Number of hydra heads N (overrides the preset/config)")
      ->check(integer_in_range(1, 1024));
  app->add_option("--heads-depth", opt->heads_depth, "Blocks per head; the trunk gets the rest")
      ->check(integer_in_range(1, 100000));
  app->add_option("--vocab-size", opt->vocab_size, "Vocabulary size (embedding and output rows)")
      ->check(integer_in_range(1, 1LL << 31));
  app->add_option("--seed", opt->seed, "Initialisation seed (default 0)");
  app->add_option("--out", opt->out, "Output directory (must not exist)")->required();
  return {app, [opt] {
            NoGradGuard no_grad;  // nothing here needs a gradient: record no graph
            HYDRA_CHECK(!opt->preset.empty() || !opt->config_file.empty(), "init: give --preset NAME or --config FILE.json");
            HydraTransformerConfig config;
            if (!opt->preset.empty()) {
              config = HydraTransformerConfig::preset(opt->preset);
            } else {
              config = HydraTransformerConfig::from_json(io::read_json_file(opt->config_file, "Hydra model config", kMaxConfigBytes), opt->config_file);
            }
            if (opt->n_heads) config.n_heads = opt->n_heads;
            if (opt->vocab_size) config.base_config.vocab_size = opt->vocab_size;
            if (opt->heads_depth) {
              config.head_layers = opt->heads_depth;
              config.trunk_layers = config.base_config.n_layers - opt->heads_depth;
            }
            config.validate();
            std::cout << "init: " << config.base_config.summary() << "; trunk " << config.trunk_layers << " + "
                      << config.n_heads << " heads x " << config.head_layers << " blocks; "
                      << config.num_params() << " parameters; seed " << opt->seed << "\n";
            auto model = config.build("cpu", opt->seed);
            save_model_dir(opt->out, *model);
            std::cout << "init: wrote " << opt->out << "/config.json and " << opt->out << "/model.safetensors\n";
            return 0;
          }};
}

}  // namespace hydra::cli
