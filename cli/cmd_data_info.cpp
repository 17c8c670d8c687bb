// `hydra data-info`: what a token file holds (format, dtype, count, smallest and largest id), checked
// against the vocabulary and the training window when given. Every problem is exit code 2 with a
// message naming the file (io/token_data.h lists them).
//
//   hydra data-info train.bin --vocab-size 50304             (raw: the dtype follows the vocabulary)
//   hydra data-info fineweb_train_000001.bin                 (llm.c shard: the header says it all)
//   hydra data-info part-0.npy.zst --vocab-size 100352 --window 4097
#include <iostream>

#include "cli/command.h"
#include "io/token_data.h"

namespace hydra::cli {

Command add_data_info_command(CLI::App& hydra) {
  struct Options {
    std::string file, token_dtype = "auto";
    int64_t vocab_size = 0, window = 0;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* app = hydra.add_subcommand("data-info", "Describe and validate a token file (raw, llm.c shard, .npy, .zst)");
  app->add_option("file", opt->file, "The token file")->required();
  app->add_option("--vocab-size", opt->vocab_size,
                  "Vocabulary size: every id must be below it (and a raw file's dtype follows from it)")
      ->check(integer_in_range(1, 1LL << 32));
  app->add_option("--token-dtype", opt->token_dtype, "Ids of a raw file: auto (from --vocab-size), uint16 or uint32")
      ->check(CLI::IsMember({"auto", "uint16", "uint32"}));
  app->add_option("--window", opt->window, "Training window length (sequence length + 1): the file must hold one")
      ->check(integer_in_range(1, 1LL << 40));
  return {app, [opt] {
            io::TokenFileOptions options;
            options.dtype = io::parse_token_dtype(opt->token_dtype);
            options.vocab_size = opt->vocab_size;
            const io::TokenFile f = io::open_token_file(opt->file, options);
            if (opt->window > 0) f.check_window(opt->window);
            if (opt->vocab_size > 0) f.validate_tokens(opt->vocab_size);
            const auto [lo, hi] = f.min_max();
            std::cout << "file:    " << f.path() << "\n"
                      << "format:  " << io::token_format_name(f.format()) << (f.compressed() ? " (zstd)" : "") << "\n"
                      << "dtype:   " << io::token_dtype_name(f.dtype()) << "\n"
                      << "tokens:  " << f.size() << "\n"
                      << "min id:  " << lo << "\n"
                      << "max id:  " << hi << "\n";
            if (opt->vocab_size > 0)
              std::cout << "valid:   every id is below the vocabulary size " << opt->vocab_size << "\n";
            if (opt->window > 0)
              std::cout << "windows: " << f.size() / opt->window << " non-overlapping window(s) of " << opt->window << "\n";
            return 0;
          }};
}

}  // namespace hydra::cli
