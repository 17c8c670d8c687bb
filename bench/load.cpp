// bench_load: how long loading a model directory takes, against reading its weight file once.
//
//   build/bench_load [--preset small] [--reps N] [--dir DIR]
//
// Writes the preset to a temporary model directory (or uses DIR), then, with the file in the page cache
// (one untimed read first), times N reps of each and prints the medians:
//   read      the whole model.safetensors read into memory with read(2) (io/input_file.h): one copy
//   load      load_model_dir: config and header checks, a meta build, the float32 weights used in place
//             (a copy-on-write mapping), every weight checked finite: the loader as the CLI runs it
//   copy-load what loading cost before: build("cpu") (a random initialisation) then load_state_dict from
//             the mapped file (a second copy)
// and one line per figure:  RESULT preset=small what=load median_s=... min_s=... reps=...
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "bench/timing.h"
#include "hydra/model_dir.h"
#include "io/input_file.h"
#include "io/safetensors.h"
#include "tensor/parallel.h"

using namespace hydra;

namespace {

double time_once(const std::function<void()>& run) {
  const double start = bench::now_seconds();
  run();
  return bench::now_seconds() - start;
}

void report(const std::string& preset, const char* what, const std::vector<double>& seconds) {
  std::printf("RESULT preset=%s what=%s median_s=%.4f min_s=%.4f reps=%zu\n", preset.c_str(), what,
              bench::median(seconds), *std::min_element(seconds.begin(), seconds.end()), seconds.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::string preset = "small", dir;
  int reps = 11;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--preset")) preset = argv[i + 1];
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: bench_load [--preset small] [--reps N] [--dir DIR]\n");
      return 2;
    }
  }
  set_num_threads(default_num_threads());
  std::filesystem::path scratch;
  if (dir.empty()) {
    scratch = std::filesystem::temp_directory_path() / ("hydra-bench-load-" + std::to_string(::getpid()));
    dir = (scratch / preset).string();
    std::filesystem::create_directories(scratch);
    save_model_dir(dir, *HydraTransformerConfig::preset(preset).build("cpu", 1));
  }
  const std::string weights = dir + "/model.safetensors";
  const uint64_t bytes = io::InputFile::open(weights, "weights").size();
  std::printf("model %s: %s, %.1f MB, %d threads\n", dir.c_str(), weights.c_str(), bytes / 1e6, num_threads());

  std::vector<double> read, load, copy_load;
  io::read_file(weights, "weights", bytes);  // into the page cache
  for (int r = 0; r < reps; ++r) {
    read.push_back(time_once([&] { io::read_file(weights, "weights", bytes); }));
    load.push_back(time_once([&] { load_model_dir(dir); }));
    copy_load.push_back(time_once([&] {
      const HydraTransformerConfig config = load_model_config(dir);
      auto model = config.build("cpu");
      model->load_state_dict(io::load_safetensors(weights));
    }));
  }
  report(preset, "read", read);
  report(preset, "load", load);
  report(preset, "copy-load", copy_load);
  std::printf("load / read = %.2f (median)\n", bench::median(load) / bench::median(read));
  if (!scratch.empty()) std::filesystem::remove_all(scratch);
  return 0;
}
