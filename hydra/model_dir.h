// A model directory: config.json (the HydraTransformerConfig with its format version) and
// model.safetensors (every parameter by its contract name; float32 as Hydra writes it, F16/BF16 read too;
// docs/formats.md, 'A model directory'). A model with LoRA adapters also has adapters.safetensors and
// adapter_config.json (hydra/lora.h);
// model.safetensors then holds the base weights only, and loading applies the adapters.
//
// Writing is atomic at the directory level (io/atomic_dir.h): everything goes into a temporary sibling
// directory that is fsynced and renamed into place, so a crash leaves either no directory or a complete
// one. A training checkpoint (train/checkpoint.h) is a model directory plus the training state.
//
// Loading checks before it builds anything: config.json (bounded size, strict JSON, every field and
// limit of hydra/config.h), then the weight file's header against the config (every name, shape and
// dtype: missing, unexpected and misshapen tensors are listed; integer or other non-float weights are
// refused naming the tensor). Only then is the model built, on the meta device, and handed the weights:
// the file is memory-mapped copy-on-write (io/mmap_file.h) and each float32 tensor is used in place, a
// view of the mapping (no copy, and pages are read from the page cache only when touched; training may
// write to them without changing the file); F16/BF16 tensors are widened into memory of their own.
// Training asks for the weights in memory instead (WeightPlacement::InMemory, below).
// Last, every weight is checked finite: a NaN or an infinity is an error naming the first tensor (in
// name order) that holds one, and its index.
#pragma once

#include <memory>
#include <string>

#include "hydra/hydra_transformer.h"
#include "io/safetensors.h"

namespace hydra {

// Writes `model` to `dir`, which must not exist yet (refusing to overwrite keeps old work safe).
void save_model_dir(const std::string& dir, const HydraTransformer& model);
// Writes config.json and model.safetensors (and the adapter files, if any) into the existing directory
// `dir` (each file atomically); save_model_dir and the checkpoint writer call it on their temp directory.
void write_model_files(const std::string& dir, const HydraTransformer& model);
// Reads config.json only (no weights): enough for `hydra info` and meta builds.
HydraTransformerConfig load_model_config(const std::string& dir);
// Error unless the weight file's header (read from `file`) holds exactly the config's parameters, with
// their shapes, in float dtypes (see the top of this file).
void check_weights_match_config(const io::SafetensorsHeader& header, const HydraTransformerConfig& config,
                                const std::string& file);
// Reads the config and the weights (see the top of this file), then the adapters when
// adapter_config.json is present; every error names the file and what is wrong.
// weights = DType::BFloat16 loads for inference with every matrix in bfloat16 (norm weights stay float32;
// nn::convert_matrices_to_bfloat16): BF16 tensors of the file are used in place, F32 (and F16) ones are
// rounded one tensor at a time and the mapped float32 pages are given back to the OS right after
// (madvise), so the float32 weights are never resident all at once.
//
// placement = InMemory (float32 only) reads the weights into memory of the model's own instead (one
// slab, as a built model has): what training wants. Weights it writes every step would otherwise be
// copied out of the mapping page by page on the first optimizer step, and the GEMMs read the mapping's
// scattered 4 KiB pages more slowly than one block (bench/README, 'Weights in memory for training').
enum class WeightPlacement { FileMapping, InMemory };
std::unique_ptr<HydraTransformer> load_model_dir(const std::string& dir, DType weights = DType::Float32,
                                                 WeightPlacement placement = WeightPlacement::FileMapping);
// Error naming the first tensor (in name order) that holds a NaN or an infinity, and its index.
void check_finite_weights(const nn::StateDict& state, const std::string& file);

}  // namespace hydra
