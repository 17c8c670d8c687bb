// What the two halves of the trainer share: train/trainer_setup.cpp builds a Trainer (options, data,
// model, what trains, the split across processes, a resume), train/trainer.cpp runs it (steps,
// evaluation, checkpoints, the loop). Not for use outside them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "train/data.h"
#include "train/trainer.h"

namespace hydra::train {

struct Trainer::Group {
  std::string name;            // "shared" or "head<k>": the stream's key in the checkpoint
  std::vector<int64_t> heads;  // the trained heads reading this stream's batches
  std::unique_ptr<DataStream> stream;
};

namespace trainer_detail {

// The directory inside out_dir that holds the checkpoints (step_00000042, ...).
inline constexpr const char* kCheckpointsDir = "checkpoints";

// "0,2,3": for messages and the banner.
inline std::string join_ints(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return s;
}

}  // namespace trainer_detail
}  // namespace hydra::train
