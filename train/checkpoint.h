// Training checkpoints: a model directory plus everything needed to resume training exactly.
//
// A checkpoint directory holds
//   config.json              the model config (as in a model directory, hydra/model_dir.h)
//   model.safetensors        the weights, float32 (as in a model directory)
//   training_state.bin.zst   the training state: one zstd frame (level 3, frame checksum on, content size
//                            in the header) whose content is a safetensors file: the tensors of
//                            TrainingState::optimizer_tensors under their own names, and in __metadata__
//                            {"format": "hydra-training-state", "training_state": "<JSON>"} where the
//                            JSON holds every other field of TrainingState (see to_json below).
//   adapter_config.json      with LoRA adapters only: the adapters (hydra/lora.h), as in a model directory
//   adapters.safetensors
//   manifest.json            {"format": "hydra-checkpoint", "format_version": 1, "created_by": "...",
//                             "step": N,
//                             "files": {"config.json": {"sha256": "<hex>", "bytes": N}, ... every file above},
//                             "data_files": [{"path": "...", "sha256": "<hex>", "bytes": N}, ...],
//                             "manifest_sha256": "<hex>"}
//                            manifest_sha256 is the sha256 of the manifest without that key, dumped
//                            compactly (nlohmann::json::dump(), keys sorted): a damaged manifest is
//                            reported as such instead of blaming the file whose digest it garbled.
//
// Writing goes through io/atomic_dir.h (temp dir, fsync, rename aside, rename in, remove old): a kill
// at any instant leaves the old checkpoint or the new one loadable, and load_checkpoint() finds it (it
// resolves the aside copy when a kill left only that). The next save repairs the leftovers.
//
// Loading checks, in order, and names the file and the reason on failure: the manifest parses, has
// format "hydra-checkpoint" and format_version 1, and its own digest matches; every listed file exists
// with the listed size and sha256; training_state.bin.zst decompresses (which verifies the zstd frame
// checksum) into a valid safetensors container; config.json and the weights load into a model.
// The data files are not read at load (they may be large or moved): verify_data_files() checks them
// when the trainer resumes on the same data.
//
// Not here: the optimizer or the data loader themselves (TrainingState is their storage), sharded or
// distributed checkpoints, keeping the last K checkpoints.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "hydra/hydra_transformer.h"
#include "tensor/tensor.h"

namespace hydra::train {

inline constexpr int kCheckpointFormatVersion = 1;

// The state of one random stream (tensor/random.h: a Generator is exactly (seed, offset)).
struct RngState {
  uint64_t seed = 0;
  uint64_t offset = 0;
  bool operator==(const RngState&) const = default;
};

// Everything besides the weights that a resumed run needs to continue bit-identically.
struct TrainingState {
  int64_t step = 0;         // optimizer steps taken
  int64_t tokens_seen = 0;  // training tokens consumed
  // Optimizer tensors by name; AdamW stores "exp_avg.<parameter name>" and "exp_avg_sq.<parameter
  // name>" (any dtype Tensor has, any shape; float32 for moments).
  std::map<std::string, Tensor> optimizer_tensors;
  nlohmann::json optimizer = nlohmann::json::object();    // its scalars: kind, betas, eps, weight decay ...
  nlohmann::json schedule = nlohmann::json::object();     // learning-rate schedule kind and position
  nlohmann::json data_loader = nlohmann::json::object();  // positions: per head, per file, epoch, order seed
  std::map<std::string, RngState> rng;                    // named streams: "data", "dropout", ...
  nlohmann::json run_config = nlohmann::json::object();   // the trainer's options, to check a resume
  nlohmann::json progress = nlohmann::json::object();     // the trainer's bookkeeping: best val loss, elapsed ...
};

// One data file a run trained on.
struct DataFileRecord {
  std::string path;
  std::string sha256;
  uint64_t bytes = 0;
  bool operator==(const DataFileRecord&) const = default;
};
// Hashes the file (streamed): compute once per run and pass to every save.
DataFileRecord describe_data_file(const std::string& path);

struct CheckpointFileRecord {
  std::string sha256;
  uint64_t bytes = 0;
};

struct CheckpointManifest {
  int format_version = kCheckpointFormatVersion;
  std::string created_by;
  int64_t step = 0;
  std::map<std::string, CheckpointFileRecord> files;  // by file name inside the checkpoint
  std::vector<DataFileRecord> data_files;
};

// The manifest as JSON text (with its own digest) and back. parse_checkpoint_manifest validates
// everything listed at the top; `file` names it in errors. No I/O: the fuzzing entry point.
std::string checkpoint_manifest_text(const CheckpointManifest& manifest);
CheckpointManifest parse_checkpoint_manifest(std::string_view text, const std::string& file);

// The training state container (the decompressed content of training_state.bin.zst): no I/O.
// parse_training_state validates the safetensors layout, the metadata and every field's type.
TrainingState parse_training_state(std::string_view bytes, const std::string& file);

struct SaveCheckpointOptions {
  std::string created_by = "hydra";  // the CLI passes "hydra <version>"
  int zstd_level = 3;
};

// Writes (or atomically replaces) the checkpoint directory `dir`.
void save_checkpoint(const std::string& dir, const HydraTransformer& model, const TrainingState& state,
                     const std::vector<DataFileRecord>& data_files, const SaveCheckpointOptions& options = {});

struct Checkpoint {
  std::string path;  // the directory actually read (dir, or its aside copy after an interrupted save)
  CheckpointManifest manifest;
  std::unique_ptr<HydraTransformer> model;
  TrainingState state;
};

// Reads and verifies a checkpoint (see the top of this file for every check).
Checkpoint load_checkpoint(const std::string& dir);

// Error unless every data file still has the recorded size and sha256 (naming the first that differs).
void verify_data_files(const CheckpointManifest& manifest);

}  // namespace hydra::train
