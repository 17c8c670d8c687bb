// Model directories: writing, and loading without waste (the contract is in model_dir.h).
#include "hydra/model_dir.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <vector>

#include "hydra/lora.h"
#include "io/atomic_dir.h"
#include "io/atomic_file.h"
#include "io/input_file.h"
#include "io/json_file.h"
#include "io/mmap_file.h"
#include "tensor/bfloat16.h"
#include "tensor/parallel.h"

namespace hydra {

namespace fs = std::filesystem;

void write_model_files(const std::string& dir, const HydraTransformer& model) {
  HYDRA_CHECK(!model.is_meta(), "save_model_dir: a meta model has no weights to save");
  io::write_file_atomic((fs::path(dir) / "config.json").string(), model.config().to_json().dump(2) + "\n");
  io::save_safetensors((fs::path(dir) / "model.safetensors").string(), base_state_dict(model), {{"format", "hydra"}});
  write_lora_files(dir, model);  // adapters.safetensors + adapter_config.json, when the model has adapters
}

void save_model_dir(const std::string& dir, const HydraTransformer& model) {
  HYDRA_CHECK(!model.is_meta(), "save_model_dir: a meta model has no weights to save");
  io::DirectoryWriter out(dir, /*replace=*/false);
  write_model_files(out.temp_dir(), model);
  out.commit();
}

HydraTransformerConfig load_model_config(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  return HydraTransformerConfig::from_json(io::read_json_file(path, "Hydra model config", kMaxConfigBytes), path);
}

void check_weights_match_config(const io::SafetensorsHeader& header, const HydraTransformerConfig& config,
                                const std::string& file) {
  std::map<std::string, const io::SafetensorsTensorInfo*> in_file;
  for (const io::SafetensorsTensorInfo& t : header.tensors) in_file[t.name] = &t;
  std::vector<std::string> missing, wrong_shape;
  size_t matched = 0;
  for (const auto& [name, shape] : config.parameter_shapes()) {
    const auto it = in_file.find(name);
    if (it == in_file.end()) {
      missing.push_back(name);
      continue;
    }
    ++matched;
    if (it->second->shape != shape)
      wrong_shape.push_back(name + " (config " + shape_str(shape) + ", file " + shape_str(it->second->shape) + ")");
  }
  std::vector<std::string> unexpected;
  if (matched != in_file.size()) {
    const auto wanted = config.parameter_shapes();
    std::map<std::string, bool> known;
    for (const auto& [name, shape] : wanted) known[name] = true;
    for (const auto& [name, t] : in_file)
      if (!known.count(name)) unexpected.push_back(name);
  }
  if (!missing.empty() || !unexpected.empty() || !wrong_shape.empty())
    throw Error(nn::state_mismatch_message(file + " does not hold the model its config.json describes", missing,
                                           unexpected, wrong_shape, "with another shape", 5));
  for (const io::SafetensorsTensorInfo& t : header.tensors)
    HYDRA_CHECK(io::safetensors_is_float_weight(t.dtype), file, ": tensor '", t.name, "' is ", t.dtype,
                "; expected float weights (F32, F16 or BF16)");
}

namespace {

// The index of the first NaN or infinity in p[0 .. n), or -1. The first pass is a branch-free bit test
// (exponent bits all ones), which the compiler vectorizes; only a hit pays for the second.
int64_t first_non_finite(const float* p, int64_t n) {
  uint32_t any = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, p + i, 4);
    any |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  if (any == 0) return -1;
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) return i;
  return -1;
}

}  // namespace

namespace {

// A bfloat16 tensor's first NaN or infinity (exponent bits all ones), serially: the tensors checked
// here are a BF16 file's, used in place, whose pages are read once anyway.
void check_finite_bfloat16(const std::string& name, const Tensor& t, const std::string& file) {
  const bfloat16* p = t.data<bfloat16>();
  for (int64_t i = 0, n = t.numel(); i < n; ++i)
    HYDRA_CHECK((p[i].bits & 0x7f80u) != 0x7f80u, file, ": tensor '", name, "' holds ", to_float(p[i]), " at index ", i,
                " (the first non-finite weight); NaN and infinite weights are refused");
}

}  // namespace

void check_finite_weights(const nn::StateDict& state, const std::string& file) {
  constexpr int64_t kChunk = 1 << 18;
  for (const auto& [name, t] : state) {
    if (t.dtype() == DType::BFloat16) {
      check_finite_bfloat16(name, t, file);
      continue;
    }
    HYDRA_ASSERT(t.dtype() == DType::Float32 && t.is_contiguous(), "check_finite_weights: '", name,
                 "' is not contiguous float32");
    const float* p = t.data<float>();
    const int64_t n = t.numel(), chunks = (n + kChunk - 1) / kChunk;
    std::vector<int64_t> first(static_cast<size_t>(chunks), -1);  // per chunk: its first bad index
    parallel_for(0, chunks, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t c = lo; c < hi; ++c) {
        const int64_t begin = c * kChunk, at = first_non_finite(p + begin, std::min(kChunk, n - begin));
        first[static_cast<size_t>(c)] = at < 0 ? -1 : begin + at;
      }
    });
    for (const int64_t at : first)
      HYDRA_CHECK(at < 0, file, ": tensor '", name, "' holds ", p[at], " at index ", at,
                  " (the first non-finite weight); NaN and infinite weights are refused");
  }
}

namespace {

// Gives the whole pages inside [begin, begin + nbytes) of a copy-on-write file mapping back to the OS.
// Pages never written are dropped (a later read would fetch the file's bytes again), so the process
// stops holding them.
void release_mapped_pages(const void* begin, size_t nbytes) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t lo = (reinterpret_cast<uintptr_t>(begin) + page - 1) / page * page;
  const uintptr_t hi = (reinterpret_cast<uintptr_t>(begin) + nbytes) / page * page;
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

// One matrix of the file as bfloat16: a BF16 tensor as it is (in place when aligned), any other float
// tensor checked finite, rounded, and its mapped pages released.
Tensor bfloat16_matrix(const std::shared_ptr<const io::MappedFile>& mapping, const io::SafetensorsHeader& header,
                       const io::SafetensorsTensorInfo& info, const std::string& file) {
  if (info.dtype == "BF16") {
    const char* src = mapping->data() + header.data_start + info.data_begin;
    Tensor t;
    if (mapping->access() == io::MapAccess::CopyOnWrite && reinterpret_cast<uintptr_t>(src) % 2 == 0) {
      t = from_blob(mapping->writable_data() + header.data_start + info.data_begin, info.shape, DType::BFloat16,
                    std::const_pointer_cast<io::MappedFile>(mapping));
    } else {
      t = empty(info.shape, DType::BFloat16);
      std::memcpy(t.raw_data(), src, info.data_end - info.data_begin);
    }
    check_finite_bfloat16(info.name, t, file);
    return t;
  }
  const Tensor wide = io::safetensors_tensor(mapping, header, info);  // float32: a view of the mapping for F32
  const char* bytes = static_cast<const char*>(wide.raw_data());
  const bool mapped = bytes >= mapping->data() && bytes < mapping->data() + mapping->size();
  Tensor t = empty(info.shape, DType::BFloat16);
  const float* src = wide.data<float>();
  bfloat16* dst = t.data<bfloat16>();
  // In chunks, each checked, rounded and released before the next is read: at most one chunk of the
  // float32 tensor is resident at a time (the largest matrices are tens of MB).
  constexpr int64_t kChunk = int64_t{1} << 20;
  for (int64_t begin = 0, n = wide.numel(); begin < n; begin += kChunk) {
    const int64_t len = std::min(kChunk, n - begin), bad = first_non_finite(src + begin, len);
    HYDRA_CHECK(bad < 0, file, ": tensor '", info.name, "' holds ", src[begin + bad], " at index ", begin + bad,
                " (the first non-finite weight); NaN and infinite weights are refused");
    float_to_bfloat16(src + begin, dst + begin, len);
    // From the tensor's start: a page straddling two chunks goes with the second.
    if (mapped) release_mapped_pages(src, static_cast<size_t>(begin + len) * sizeof(float));
  }
  return t;
}

// The model built with a slab of its own and every weight read into it (pread, widened when F16/BF16).
std::unique_ptr<HydraTransformer> load_weights_in_memory(const HydraTransformerConfig& config,
                                                         const io::InputFile& in, const io::SafetensorsHeader& header,
                                                         const std::string& file) {
  auto model = config.build("empty");
  nn::StateDict state = model->state_dict();  // views of the model's slab: reading into them fills it
  for (const io::SafetensorsTensorInfo& t : header.tensors)
    io::read_safetensors_floats(in, header, t, state.at(t.name).data<float>());
  check_finite_weights(state, file);
  return model;
}

// The weights as views of the file's copy-on-write mapping (float32), or as bfloat16 matrices (see the
// header), handed to a model built on the meta device.
std::unique_ptr<HydraTransformer> load_weights_mapped(const HydraTransformerConfig& config, const io::InputFile& in,
                                                      const io::SafetensorsHeader& header, DType weights_dtype,
                                                      const std::string& file) {
  // The same open file is mapped: what was checked is what is used.
  const std::shared_ptr<const io::MappedFile> mapping = io::MappedFile::map(in, io::MapAccess::CopyOnWrite);
  nn::StateDict state;
  if (weights_dtype == DType::BFloat16) {
    // In name order, so a non-finite weight is reported as the float32 load reports it.
    std::map<std::string, const io::SafetensorsTensorInfo*> by_name;
    for (const io::SafetensorsTensorInfo& t : header.tensors) by_name[t.name] = &t;
    for (const auto& [name, t] : by_name) {
      if (t->shape.size() == 2) {
        state[name] = bfloat16_matrix(mapping, header, *t, file);  // checked finite there
        continue;
      }
      state[name] = io::safetensors_tensor(mapping, header, *t);
      check_finite_weights({{name, state[name]}}, file);
    }
  } else {
    for (const io::SafetensorsTensorInfo& t : header.tensors) state[t.name] = io::safetensors_tensor(mapping, header, t);
    check_finite_weights(state, file);
  }
  auto model = config.build("meta");
  try {
    model->assign_state_dict(state);
  } catch (const Error& e) {
    throw Error(file + ": " + e.what());
  }
  return model;
}

}  // namespace

std::unique_ptr<HydraTransformer> load_model_dir(const std::string& dir, DType weights_dtype,
                                                 WeightPlacement placement) {
  HYDRA_CHECK(weights_dtype == DType::Float32 || weights_dtype == DType::BFloat16,
              "load_model_dir: weights can be loaded as float32 or bfloat16, not ", dtype_name(weights_dtype));
  HYDRA_CHECK(placement == WeightPlacement::FileMapping || weights_dtype == DType::Float32,
              "load_model_dir: bfloat16 weights are loaded from the file mapping only");
  const HydraTransformerConfig config = load_model_config(dir);
  const std::string weights = (fs::path(dir) / "model.safetensors").string();
  const io::InputFile in = io::InputFile::open(weights, "model weights");
  const io::SafetensorsHeader header = io::read_safetensors_header(in);
  check_weights_match_config(header, config, weights);
  auto model = placement == WeightPlacement::InMemory ? load_weights_in_memory(config, in, header, weights)
                                                      : load_weights_mapped(config, in, header, weights_dtype, weights);
  load_lora_files(dir, *model);  // applies adapter_config.json + adapters.safetensors when present
  return model;
}

}  // namespace hydra
