// `hydra tokenizer-train`: train a byte-level BPE tokenizer on text files (io/bpe_train.h) and write it
// as a HuggingFace tokenizer.json, which `hydra tokenize`, `hydra generate` and `hydra train --sft` load.
//
//   hydra tokenizer-train corpus/*.txt --vocab-size 4096 --out tokenizer.json
//
// Ids: 0-255 the bytes, then the merges in the order learned, then <|endoftext|> (the last id). Every
// input is read and checked (UTF-8) before training; the output is written atomically.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/command.h"
#include "io/atomic_file.h"
#include "io/bpe_train.h"

namespace hydra::cli {

Command add_tokenizer_train_command(CLI::App& hydra) {
  struct Options {
    std::vector<std::string> inputs;
    std::string out;
    io::BpeTrainOptions train;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* app = hydra.add_subcommand("tokenizer-train", "Train a byte-level BPE tokenizer on text files (tokenizer.json)");
  app->add_option("inputs", opt->inputs, "UTF-8 text files")->required();
  app->add_option("--vocab-size", opt->train.vocab_size, "Ids in total: 256 bytes + merges + <|endoftext|>")
      ->required()
      ->check(integer_in_range(257, int64_t{1} << 31));
  app->add_option("--min-frequency", opt->train.min_frequency, "Stop when no pair occurs this often (default 2)")
      ->check(integer_in_range(1, int64_t{1} << 40));
  app->add_option("--out", opt->out, "Output tokenizer.json")->required();
  return {app, [opt] {
            const auto start = std::chrono::steady_clock::now();
            io::BpeTrainer trainer(opt->train);
            uint64_t bytes = 0;
            for (const std::string& path : opt->inputs) {
              std::ifstream in(path, std::ios::binary);
              HYDRA_CHECK(in, "cannot open input file ", path);
              std::ostringstream text;
              text << in.rdbuf();
              HYDRA_CHECK(!in.bad() && !text.fail(), "cannot read input file ", path);
              bytes += text.str().size();
              trainer.add_text(text.str(), path);
            }
            const io::BpeTrainResult r = trainer.train();
            io::write_file_atomic(opt->out, io::bpe_tokenizer_json(r, opt->train.special_tokens));
            const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            std::printf("trained %zu tokens (%zu merges) on %llu bytes in %zu file%s (%lld pieces, %lld distinct) in %.2f s -> %s\n",
                        r.tokens.size(), r.merges.size(), static_cast<unsigned long long>(bytes), opt->inputs.size(),
                        opt->inputs.size() == 1 ? "" : "s", static_cast<long long>(r.pieces),
                        static_cast<long long>(r.distinct_pieces), seconds, opt->out.c_str());
            if (static_cast<int64_t>(r.tokens.size()) < opt->train.vocab_size)
              std::printf("note: stopped at %zu of %lld ids: no pair occurs %lld times any more (more text, or a lower "
                          "--min-frequency, gives more)\n",
                          r.tokens.size(), static_cast<long long>(opt->train.vocab_size),
                          static_cast<long long>(opt->train.min_frequency));
            return 0;
          }};
}

}  // namespace hydra::cli
