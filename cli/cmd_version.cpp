// `hydra version`: what this binary is and which libraries it runs on.
//
//   hydra 0.1.0
//   blas: OpenBLAS (serial) ...
//   threads: 2 (oneTBB 2021.8)
//   mpi: Open MPI v4.1.4, package: Debian OpenMPI, ...   (or: "mpi: not built in")
#include <iostream>

#include <tbb/version.h>

#include "cli/command.h"
#include "tensor/parallel.h"
#include "train/distributed.h"

namespace hydra::cli {

Command add_version_command(CLI::App& hydra) {
  CLI::App* app = hydra.add_subcommand("version", "Print Hydra's version and the BLAS/threading it uses");
  return {app, [] {
            std::cout << "hydra " << kVersion << "\n"
                      << "blas: " << blas_description() << "\n"
                      << "threads: " << num_threads() << " (oneTBB " << TBB_VERSION_MAJOR << "."
                      << TBB_VERSION_MINOR << ")\n"
                      << "mpi: " << (dist::compiled_in() ? dist::library() : std::string("not built in")) << "\n";
            return 0;
          }};
}

}  // namespace hydra::cli
