// How the `hydra` command line is put together.
//
// cli/main.cpp owns the top-level app, the global options (--threads) and the error policy; each
// subcommand lives in its own file cli/cmd_<name>.cpp and exposes one function
//
//   Command add_<name>_command(CLI::App& hydra);
//
// that declares the subcommand and its options on `hydra` and returns a Command whose `run` main.cpp
// calls after parsing. To add a subcommand: write cli/cmd_<name>.cpp, declare its add_ function below,
// and list it in main.cpp's `commands`. (CMake globs cli/*.cpp; nothing else to touch. It compiles them
// as a unity build, several files to one translation unit, so a file-local helper needs a name that no
// other cli/*.cpp uses.)
//
// Error policy (main.cpp): a command reports a user error by throwing hydra::Error (exit 2 with
// "hydra: error: <message>"); `run` returns 0 on success, 1 when the command ran but its check failed.
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "tensor/dtype.h"
#include "tensor/error.h"

namespace hydra::cli {

// Hydra's version, printed by `hydra version` and `hydra --version`.
inline constexpr const char* kVersion = "0.1.0";

// Prints what went wrong as main.cpp does for every command ("hydra: error: <message>" for a
// hydra::Error) and returns the exit code that goes with it. A command calls it itself only when it
// must say why before it exits by another path (an MPI rank whose peers are about to end the job).
int report_error(std::exception_ptr error);

struct Command {
  CLI::App* app = nullptr;   // the subcommand; app->parsed() says whether the user chose it
  std::function<int()> run;  // runs it (after --threads took effect); returns the exit code
};

// A validator for integer options: a whole number in [lo, hi], with a message that says so
// ("expected a whole number from 1 to 4096, got 'abc'"); CLI::Range alone calls "abc" "not in range".
inline CLI::Validator integer_in_range(long long lo, long long hi) {
  return CLI::Validator(
      [lo, hi](std::string& value) -> std::string {
        size_t used = 0;
        long long n = 0;
        try {
          n = std::stoll(value, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        if (used == 0 || used != value.size() || n < lo || n > hi)
          return "expected a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) +
                 ", got '" + value + "'";
        return "";
      },
      "");  // the option's help text states the range
}

// --dtype of the inference commands: how the weights are held in memory. fp32 (or float32, the default)
// as trained; bf16 (or bfloat16) rounds every matrix to bfloat16 when loading (docs/generation.md,
// 'bfloat16 weights'). Any other value is a parse error naming it (exit 2).
inline CLI::Option* add_dtype_option(CLI::App* app, std::string& dtype, const std::string& what) {
  return app
      ->add_option("--dtype", dtype, what)
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            if (value == "fp32" || value == "float32" || value == "bf16" || value == "bfloat16") return "";
            return "expected fp32 or bf16, got '" + value + "'";
          },
          ""));
}
inline DType parse_dtype_option(const std::string& dtype) {
  return dtype == "bf16" || dtype == "bfloat16" ? DType::BFloat16 : DType::Float32;
}

// "1,2,3" -> {1, 2, 3}, or a hydra::Error naming `flag` and the part that is not a whole number
// ("--heads: 'x' is not a whole number (expected e.g. 0,2)").
inline std::vector<int64_t> parse_int_list(const std::string& text, const std::string& flag) {
  std::vector<int64_t> out;
  size_t begin = 0;
  while (true) {
    const size_t comma = text.find(',', begin);
    const std::string part = text.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin);
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    HYDRA_CHECK(used > 0 && used == part.size(), flag, ": '", part, "' is not a whole number (expected e.g. 0,2)");
    out.push_back(v);
    if (comma == std::string::npos) return out;
    begin = comma + 1;
  }
}

// "w1,w2,w3" -> {"w1", "w2", "w3"}; empty parts are kept (the caller's validation names them).
inline std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  size_t begin = 0;
  while (true) {
    const size_t comma = text.find(',', begin);
    out.push_back(text.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin));
    if (comma == std::string::npos) return out;
    begin = comma + 1;
  }
}

Command add_init_command(CLI::App& hydra);
Command add_info_command(CLI::App& hydra);
Command add_forward_command(CLI::App& hydra);
Command add_data_info_command(CLI::App& hydra);
Command add_convert_command(CLI::App& hydra);
Command add_export_command(CLI::App& hydra);
Command add_merge_lora_command(CLI::App& hydra);
Command add_selfcheck_command(CLI::App& hydra);
Command add_tokenize_command(CLI::App& hydra);
Command add_tokenizer_train_command(CLI::App& hydra);
Command add_generate_command(CLI::App& hydra);
Command add_train_command(CLI::App& hydra);
Command add_eval_command(CLI::App& hydra);
Command add_version_command(CLI::App& hydra);

}  // namespace hydra::cli
