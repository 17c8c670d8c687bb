// Sharded safetensors checkpoints, as HuggingFace writes them for large models (docs/formats.md,
// 'Sharded checkpoints'):
//
//   model.safetensors.index.json     {"metadata": {"total_size": <bytes of tensor data>},
//                                     "weight_map": {"<tensor name>": "model-00001-of-00002.safetensors", ...}}
//   model-00001-of-00002.safetensors
//   model-00002-of-00002.safetensors
//
// Reading checks that the index is valid JSON (no duplicate names), that weight_map is a non-empty object
// of plain file names (no directories: an index cannot point outside its checkpoint) ending in
// .safetensors, that every shard it names exists, that every listed tensor is in the shard it names, and
// that every tensor of every shard is listed there (a tensor in two shards, or in a shard the index does
// not say, is an error). metadata.total_size, when present, must be a non-negative integer; it is not
// compared with the data (writers disagree on what it counts). Other top-level keys are ignored.
//
// Writing (export) puts everything in one model.safetensors up to `max_shard_bytes` of tensor data, and
// above that shards named model-0000k-of-0000n.safetensors, filled in name order (a new shard starts
// when the next tensor would overflow the limit; a tensor larger than the limit gets a shard alone),
// plus the index. Every file is written atomically.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "io/input_file.h"
#include "io/safetensors.h"
#include "tensor/tensor.h"

namespace hydra::io {

inline constexpr const char* kSafetensorsIndexName = "model.safetensors.index.json";
inline constexpr const char* kSafetensorsSingleName = "model.safetensors";

struct SafetensorsIndex {
  std::optional<uint64_t> total_size;              // metadata.total_size
  std::map<std::string, std::string> weight_map;   // tensor name -> shard file name (in the index's dir)
  std::vector<std::string> shards() const;         // the distinct shard names, sorted
};

// Parses and validates an index (no I/O). `file` names it in errors.
SafetensorsIndex parse_safetensors_index(std::string_view text, const std::string& file);

// Loads every tensor of a sharded checkpoint from its index file (the shards are next to it).
std::map<std::string, Tensor> load_sharded_safetensors(const std::string& index_path);

// A checkpoint directory: the sharded one when `dir` has model.safetensors.index.json, else
// model.safetensors; an error naming both when neither exists.
std::map<std::string, Tensor> load_safetensors_checkpoint(const std::string& dir);

// One weight file of a checkpoint, open, with its header read.
struct SafetensorsShard {
  InputFile file;
  SafetensorsHeader header;
};
// The same files and every check load_safetensors_checkpoint makes on the index and the headers, but no
// tensor data read: for loaders that stream each tensor to where it belongs (read_safetensors_floats).
std::vector<SafetensorsShard> open_safetensors_checkpoint(const std::string& dir);

// Writes `tensors` into the existing directory `dir` (see above); returns the names of the files written.
// `metadata` goes into every shard's __metadata__.
std::vector<std::string> save_sharded_safetensors(const std::string& dir, const std::map<std::string, Tensor>& tensors,
                                                  uint64_t max_shard_bytes,
                                                  const std::map<std::string, std::string>& metadata = {});

}  // namespace hydra::io
