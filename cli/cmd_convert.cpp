// `hydra convert`: a HuggingFace OLMo-2 directory (Olmo2ForCausalLM: config.json and model.safetensors
// or shards with model.safetensors.index.json) -> a Hydra model directory.
//
//   hydra convert hf/OLMo-2-0425-1B --out models/olmo2-1b --n-heads 5 --heads-depth 3 --vocab-size 100352
//
// The last --heads-depth blocks become every head (each its own copy), the others the trunk; the
// embeddings and output rows are zero-padded up to --vocab-size. Mapping and refusals: hydra/hf_olmo2.h.
#include <filesystem>
#include <iostream>

#include "autograd/grad_mode.h"
#include "cli/command.h"
#include "hydra/hf_olmo2.h"
#include "hydra/model_dir.h"
#include "nn/module.h"

namespace hydra::cli {

Command add_convert_command(CLI::App& hydra) {
  struct Options {
    std::string hf_dir, out, dtype = "fp32";
    int64_t n_heads = 5, heads_depth = 3, vocab_size = 0;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* app = hydra.add_subcommand("convert", "Convert a HuggingFace OLMo-2 checkpoint into a Hydra model directory");
  app->add_option("hf_dir", opt->hf_dir, "HF directory (config.json + model.safetensors or sharded)")->required();
  app->add_option("--out", opt->out, "Output model directory (must not exist)")->required();
  app->add_option("--n-heads", opt->n_heads, "Number of hydra heads N (default 5)")->check(integer_in_range(1, 1024));
  app->add_option("--heads-depth", opt->heads_depth, "Blocks per head, taken from the end (default 3)")
      ->check(integer_in_range(1, 100000));
  app->add_option("--vocab-size", opt->vocab_size, "Pad the vocabulary to this many rows (default: the checkpoint's)")
      ->check(integer_in_range(1, 1LL << 31));
  add_dtype_option(app, opt->dtype,
                   "Weights written: fp32 (default) or bf16 (every matrix as BF16, e.g. to keep a BF16 checkpoint's "
                   "bytes; docs/formats.md)");
  return {app, [opt] {
            NoGradGuard no_grad;  // nothing here needs a gradient: record no graph
            // Refuse an existing output before reading gigabytes of weights.
            std::error_code ec;
            HYDRA_CHECK(!std::filesystem::exists(opt->out, ec), "output directory '", opt->out,
                        "' already exists; choose a new path");
            auto model = load_hf_olmo2(opt->hf_dir, opt->n_heads, opt->heads_depth, opt->vocab_size);
            const HydraTransformerConfig& c = model->config();
            std::cout << "convert: " << c.base_config.summary() << "; trunk " << c.trunk_layers << " + " << c.n_heads
                      << " heads x " << c.head_layers << " blocks; " << c.num_params() << " parameters\n";
            if (parse_dtype_option(opt->dtype) == DType::BFloat16) {
              const int64_t n = nn::convert_matrices_to_bfloat16(*model);
              std::cout << "convert: " << n << " matrices written as BF16 (norm weights stay F32)\n";
            }
            save_model_dir(opt->out, *model);
            std::cout << "convert: wrote " << opt->out << "/config.json and " << opt->out << "/model.safetensors\n";
            return 0;
          }};
}

}  // namespace hydra::cli
