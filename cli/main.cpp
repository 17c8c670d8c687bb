// The `hydra` command-line tool: parses the global options, applies --threads, and dispatches to one
// subcommand (cli/cmd_*.cpp). This is the one place that turns exceptions into exit codes:
//
//   0  success
//   1  the command ran and its check failed (e.g. selfcheck's loss did not fall), or an unexpected
//      exception (a bug in Hydra; the message says so)
//   2  a usage error: bad command line (CLI11's message) or a hydra::Error ("hydra: error: <message>")
//
// The library never exits or aborts (tensor/error.h): it throws, and only this file decides what
// the process does about it.
#include <algorithm>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "io/temp_files.h"
#include "tensor/error.h"
#include "tensor/parallel.h"
#include "train/distributed.h"

namespace {

// "selfcheck, version": for messages that list the choices.
std::string subcommand_names(const CLI::App& app) {
  std::string names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    names += (names.empty() ? "" : ", ") + sub->get_name();
  return names;
}

int run(int argc, char** argv) {
  using namespace hydra::cli;

  CLI::App app{"Hydra: a C++ deep-learning framework for multi-head language models", "hydra"};
  app.set_version_flag("--version", std::string("hydra ") + kVersion);
  app.require_subcommand(0, 1);  // at most one; "none" gets a clearer message below
  // Subcommands created after this inherit it: an option they do not know (--threads) is handed to
  // `hydra` itself, so `hydra --threads 2 selfcheck` and `hydra selfcheck --threads 2` both work.
  app.fallthrough();

  int threads = 0;  // 0: not given
  app.add_option("--threads", threads,
                 "Worker threads (1-4096) for every kernel and GEMM (default: $HYDRA_NUM_THREADS, else all cores; "
                 "under mpirun, per rank: the cores divided by the ranks on this machine)")
      ->check(integer_in_range(1, 4096));

  // One entry per subcommand, each defined in its own cli/cmd_<name>.cpp.
  const std::vector<Command> commands = {
      add_init_command(app),
      add_info_command(app),
      add_forward_command(app),
      add_data_info_command(app),
      add_convert_command(app),
      add_export_command(app),
      add_merge_lora_command(app),
      add_selfcheck_command(app),
      add_tokenize_command(app),
      add_tokenizer_train_command(app),
      add_generate_command(app),
      add_train_command(app),
      add_eval_command(app),
      add_version_command(app),
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);  // prints the help of the (sub)command asked about; exit code 0
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // A stray word with no subcommand chosen is almost always a mistyped (or not yet written)
    // subcommand: CLI11 would say "The following argument was not expected"; name it and the choices.
    if (dynamic_cast<const CLI::ExtrasError*>(&e) && app.get_subcommands().empty() && !app.remaining().empty()) {
      std::cerr << "hydra: error: unknown subcommand '" << app.remaining().front()
                << "'; expected one of: " << subcommand_names(app) << " (see hydra --help)\n";
    } else {
      std::cerr << "hydra: error: " << e.what() << " (see hydra --help)\n";
    }
    return 2;
  }
  if (app.get_subcommands().empty()) {
    std::cerr << "hydra: error: no subcommand given; expected one of: " << subcommand_names(app)
              << " (see hydra --help)\n";
    return 2;
  }

  // One thread limit for the whole process, set before any kernel runs (tensor/parallel.h).
  // Under mpirun the ranks of one machine share its cores.
  if (threads == 0 && hydra::dist::local_size() > 1 && !std::getenv("HYDRA_NUM_THREADS"))
    threads = std::max(1, hydra::default_num_threads() / hydra::dist::local_size());
  hydra::set_num_threads(threads > 0 ? threads : hydra::default_num_threads());

  for (const Command& command : commands)
    if (command.app->parsed()) return command.run();
  // Unreachable (a subcommand was parsed, and each is in `commands`); fail loudly rather than succeed.
  std::cerr << "hydra: internal error: no subcommand ran\n";
  return 1;
}

// A message as printed: names and values read from a file can be of any length, the terminal need not be.
std::string shown(const std::string& message) {
  constexpr size_t kMaxChars = 4000;
  if (message.size() <= kMaxChars) return message;
  return message.substr(0, kMaxChars) + "... (" + std::to_string(message.size() - kMaxChars) + " more characters)";
}

}  // namespace

int hydra::cli::report_error(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const hydra::Error& e) {
    std::cerr << "hydra: error: " << shown(e.what()) << std::endl;
    return 2;
  } catch (const hydra::InternalError& e) {
    std::cerr << "hydra: " << shown(e.what()) << "\n(this is a bug in Hydra; please report it)" << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "hydra: unexpected error: " << shown(e.what()) << std::endl;
    return 1;
  } catch (...) {
    std::cerr << "hydra: unexpected error of unknown type" << std::endl;
    return 1;
  }
}

// Under mpirun: MPI starts first and ends last (train/distributed.h), on every way out but an abort.
int run_in_job(int argc, char** argv) {
  hydra::dist::init(&argc, &argv);
  struct Finalize {
    ~Finalize() { hydra::dist::finalize(); }
  } finalize;
  return run(argc, argv);
}

int main(int argc, char** argv) {
  // An interrupted command removes its temporary files and directories (io/temp_files.h).
  hydra::io::remove_temps_on_signals();
  try {
    return run_in_job(argc, argv);
  } catch (...) {
    return hydra::cli::report_error(std::current_exception());
  }
}
