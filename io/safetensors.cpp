// safetensors reader and writer (the format and the rules are in safetensors.h).
#include "io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/half.h"
#include "io/input_file.h"
#include "io/mmap_file.h"
#include "io/json_file.h"
#include "tensor/copy.h"
#include "tensor/error.h"
#include "tensor/parallel.h"

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; Hydra reads and writes it as host memory");

namespace hydra::io {

namespace {

using json = nlohmann::json;

// Every dtype of the format whose element is a whole number of bytes, with that size.
struct KnownDType {
  const char* name;
  uint64_t size;
};
constexpr KnownDType kKnownDTypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},   {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
    {"BF16", 2}, {"I32", 4}, {"U32", 4},  {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8},
};
constexpr const char* kLoadable = "F32, F64, I32, I64, F16 or BF16";

uint64_t known_dtype_size(const std::string& name) {
  for (const KnownDType& d : kKnownDTypes)
    if (name == d.name) return d.size;
  return 0;
}

std::string offsets_str(uint64_t begin, uint64_t end) {
  return detail::concat_message("[", begin, ", ", end, "]");
}

// All errors about a file's content start the same way.
template <class... Args>
[[noreturn]] void fail(const std::string& file, const Args&... args) {
  throw Error(detail::concat_message("invalid safetensors file ", file, ": ", args...));
}

// A non-negative JSON integer, or an error naming the tensor and the field.
uint64_t json_uint(const json& v, const std::string& file, const std::string& name, const char* field) {
  if (!v.is_number_unsigned())
    fail(file, "tensor '", name, "': ", field, " must hold non-negative integers, got ", json_excerpt(v));
  return v.get<uint64_t>();
}

SafetensorsTensorInfo parse_tensor_entry(const std::string& name, const json& entry, uint64_t data_size,
                                         const std::string& file) {
  if (!entry.is_object()) fail(file, "tensor '", name, "': expected an object, got ", json_excerpt(entry));
  SafetensorsTensorInfo info;
  info.name = name;

  const auto dtype_it = entry.find("dtype");
  if (dtype_it == entry.end() || !dtype_it->is_string()) fail(file, "tensor '", name, "': missing string 'dtype'");
  info.dtype = dtype_it->get<std::string>();
  const uint64_t elem_size = known_dtype_size(info.dtype);
  if (elem_size == 0)
    fail(file, "tensor '", name, "': unknown dtype '", info.dtype, "' (Hydra loads ", kLoadable, ")");

  const auto shape_it = entry.find("shape");
  if (shape_it == entry.end() || !shape_it->is_array()) fail(file, "tensor '", name, "': missing array 'shape'");
  // Element count with overflow checks: a header may claim any size, the file decides what is real.
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& d : *shape_it) {
    const uint64_t dim = json_uint(d, file, name, "shape");
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      fail(file, "tensor '", name, "': shape dimension ", dim, " is too large");
    info.shape.push_back(static_cast<int64_t>(dim));
    overflow = overflow || __builtin_mul_overflow(numel, dim, &numel);
  }
  uint64_t nbytes = 0;
  overflow = overflow || __builtin_mul_overflow(numel, elem_size, &nbytes);
  // A zero dimension makes the product 0, even if it overflowed on the way.
  if (std::find(info.shape.begin(), info.shape.end(), 0) != info.shape.end()) {
    overflow = false;
    nbytes = 0;
  }
  if (overflow || nbytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    fail(file, "tensor '", name, "': shape ", shape_str(info.shape), " of ", info.dtype,
         " has more bytes than any file can hold");

  const auto offsets_it = entry.find("data_offsets");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2)
    fail(file, "tensor '", name, "': 'data_offsets' must be an array [begin, end]");
  info.data_begin = json_uint((*offsets_it)[0], file, name, "data_offsets");
  info.data_end = json_uint((*offsets_it)[1], file, name, "data_offsets");
  if (info.data_end < info.data_begin)
    fail(file, "tensor '", name, "': data_offsets ", offsets_str(info.data_begin, info.data_end),
         " end before they begin");
  if (info.data_end > data_size)
    fail(file, "tensor '", name, "': data_offsets ", offsets_str(info.data_begin, info.data_end),
         " go beyond the end of the data (", data_size, " bytes after the header)");
  if (info.data_end - info.data_begin != nbytes)
    fail(file, "tensor '", name, "': data_offsets ", offsets_str(info.data_begin, info.data_end), " hold ",
         info.data_end - info.data_begin, " bytes but shape ", shape_str(info.shape), " of ", info.dtype,
         " needs ", nbytes);
  return info;
}

}  // namespace

const char* safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Int32: return "I32";
    case DType::Int64: return "I64";
    case DType::BFloat16: return "BF16";
  }
  HYDRA_ASSERT(false, "unhandled dtype");
  return "";
}

bool safetensors_dtype_from_name(const std::string& name, DType* dtype) {
  for (DType d : {DType::Float32, DType::Float64, DType::Int32, DType::Int64}) {
    if (name == safetensors_dtype_name(d)) {
      *dtype = d;
      return true;
    }
  }
  return false;
}

SafetensorsHeader parse_safetensors_header(std::string_view prefix, uint64_t file_size, const std::string& file) {
  HYDRA_ASSERT(prefix.size() <= file_size, "prefix longer than the file");
  if (file_size < 8) fail(file, "the file is ", file_size, " bytes, too short for the 8-byte header length");
  if (prefix.size() < 8) fail(file, "only ", prefix.size(), " bytes given, need the 8-byte header length");
  SafetensorsHeader h;
  std::memcpy(&h.header_size, prefix.data(), 8);  // little-endian (static_assert above)
  if (h.header_size > kSafetensorsMaxHeaderSize)
    fail(file, "header length ", h.header_size, " exceeds the limit of ", kSafetensorsMaxHeaderSize, " bytes");
  if (h.header_size > file_size - 8)
    fail(file, "header length ", h.header_size, " goes beyond the end of the file (", file_size, " bytes)");
  h.data_start = 8 + h.header_size;
  if (prefix.size() < h.data_start) fail(file, "only ", prefix.size(), " bytes given, the header needs ", h.data_start);
  const uint64_t data_size = file_size - h.data_start;

  json header;
  try {
    header = parse_json_text(prefix.substr(8, h.header_size), "header");
  } catch (const Error& e) {
    fail(file, e.what());
  }
  if (!header.is_object()) fail(file, "the header must be a JSON object, got ", header.type_name());

  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(file, "__metadata__ must be an object of strings, got ", entry.type_name());
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          fail(file, "__metadata__ must map strings to strings, but '", key, "' is a ", value.type_name());
        h.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    h.tensors.push_back(parse_tensor_entry(name, entry, data_size, file));
  }

  // The tensors, sorted by offset, must tile the data region: no gap, no overlap, no trailing bytes.
  std::sort(h.tensors.begin(), h.tensors.end(), [](const SafetensorsTensorInfo& a, const SafetensorsTensorInfo& b) {
    return a.data_begin != b.data_begin ? a.data_begin < b.data_begin : a.data_end < b.data_end;
  });
  uint64_t covered = 0;
  const SafetensorsTensorInfo* previous = nullptr;
  for (const SafetensorsTensorInfo& t : h.tensors) {
    if (t.data_begin < covered)
      fail(file, "tensor '", t.name, "': data_offsets ", offsets_str(t.data_begin, t.data_end), " overlap tensor '",
           previous->name, "' ", offsets_str(previous->data_begin, previous->data_end));
    if (t.data_begin > covered)
      fail(file, "tensor '", t.name, "': data_offsets ", offsets_str(t.data_begin, t.data_end), " leave a gap of ",
           t.data_begin - covered, " bytes after offset ", covered);
    covered = t.data_end;
    previous = &t;
  }
  if (covered != data_size)
    fail(file, "the tensors cover ", covered, " bytes of data but the file has ", data_size,
         " after the header (", data_size - covered, " trailing bytes)");
  return h;
}

SafetensorsHeader read_safetensors_header(const InputFile& in) {
  // First the length, checked against the file before the header itself is read.
  std::string prefix = in.read_prefix(8);
  if (prefix.size() == 8) {
    uint64_t n = 0;
    std::memcpy(&n, prefix.data(), 8);
    if (n <= kSafetensorsMaxHeaderSize && n <= in.size() - 8) prefix = in.read_prefix(8 + n);
  }
  return parse_safetensors_header(prefix, in.size(), in.path());
}

SafetensorsHeader read_safetensors_header(const std::string& path) {
  return read_safetensors_header(InputFile::open(path, "safetensors file"));
}

namespace {

// F16 or BF16 values (any alignment) widened to float32, exactly.
void widen_to_float(const char* src, int64_t count, bool bf16, float* dst) {
  parallel_for(0, count, kGrainElementwise, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);  // may be unaligned
      dst[i] = bf16 ? bf16_to_float(h) : f16_to_float(h);
    }
  });
}

}  // namespace

Tensor safetensors_tensor(const std::shared_ptr<const MappedFile>& file, const SafetensorsHeader& header,
                          const SafetensorsTensorInfo& t) {
  const uint64_t nbytes = t.data_end - t.data_begin;
  HYDRA_ASSERT(header.data_start + t.data_end <= file->size(), "tensor '", t.name, "' outside the mapping of ",
               file->path());
  const char* src = file->data() + header.data_start + t.data_begin;
  if (t.dtype == "F16" || t.dtype == "BF16") {
    Tensor x = empty(t.shape, DType::Float32);
    widen_to_float(src, static_cast<int64_t>(nbytes / 2), t.dtype == "BF16", x.data<float>());
    return x;
  }
  DType dtype = DType::Float32;
  if (!safetensors_dtype_from_name(t.dtype, &dtype))
    fail(file->path(), "unsupported dtype ", t.dtype, " for tensor '", t.name, "'; expected ", kLoadable);
  if (nbytes == 0) return empty(t.shape, dtype);
  // A zero-copy view when the bytes are already an aligned array of the dtype and the mapping may be
  // written (copy-on-write); a copy otherwise (the format does not require alignment, and reading a
  // misaligned float is undefined behaviour).
  if (file->access() == MapAccess::CopyOnWrite && reinterpret_cast<uintptr_t>(src) % dtype_size(dtype) == 0)
    return from_blob(file->writable_data() + header.data_start + t.data_begin, t.shape, dtype,
                     std::const_pointer_cast<MappedFile>(file));
  Tensor x = empty(t.shape, dtype);
  std::memcpy(x.raw_data(), src, nbytes);
  return x;
}

void check_loadable_dtypes(const SafetensorsHeader& header, const std::string& file) {
  for (const SafetensorsTensorInfo& t : header.tensors) {
    DType dtype;
    if (!safetensors_dtype_from_name(t.dtype, &dtype) && t.dtype != "F16" && t.dtype != "BF16")
      fail(file, "unsupported dtype ", t.dtype, " for tensor '", t.name, "'; expected ", kLoadable);
  }
}

bool safetensors_is_float_weight(const std::string& dtype) {
  return dtype == "F32" || dtype == "F16" || dtype == "BF16";
}

void read_safetensors_floats(const InputFile& in, const SafetensorsHeader& header, const SafetensorsTensorInfo& t,
                             float* dst) {
  HYDRA_CHECK(safetensors_is_float_weight(t.dtype), "tensor '", t.name, "' in ", in.path(), " is ", t.dtype,
              "; expected float weights (F32, F16 or BF16)");
  const uint64_t nbytes = t.data_end - t.data_begin, offset = header.data_start + t.data_begin;
  if (t.dtype == "F32") {
    in.read_at(dst, nbytes, offset);
    return;
  }
  // Through a bounded staging buffer: the whole tensor in 16-bit form is never held.
  constexpr uint64_t kChunkBytes = uint64_t{4} << 20;
  std::vector<char> staging(static_cast<size_t>(std::min(kChunkBytes, nbytes)));
  for (uint64_t done = 0; done < nbytes; done += staging.size()) {
    const uint64_t n = std::min<uint64_t>(staging.size(), nbytes - done);
    in.read_at(staging.data(), n, offset + done);
    widen_to_float(staging.data(), static_cast<int64_t>(n / 2), t.dtype == "BF16", dst + done / 2);
  }
}

std::map<std::string, Tensor> load_safetensors(const std::string& path, std::map<std::string, std::string>* metadata,
                                               std::shared_ptr<const MappedFile>* mapping) {
  const std::shared_ptr<const MappedFile> file = MappedFile::open(path, "safetensors file");
  SafetensorsHeader header = parse_safetensors_header(file->bytes(), file->size(), path);
  check_loadable_dtypes(header, path);  // every one before converting anything
  std::map<std::string, Tensor> tensors;
  for (const SafetensorsTensorInfo& t : header.tensors) tensors.emplace(t.name, safetensors_tensor(file, header, t));
  if (metadata != nullptr) *metadata = std::move(header.metadata);
  if (mapping != nullptr) *mapping = file;
  return tensors;
}

void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Data order: element size descending, then name, so each tensor is aligned to its element size.
  std::vector<std::pair<std::string, Tensor>> order;
  for (const auto& [name, t] : tensors) {
    HYDRA_CHECK(name != "__metadata__", "save_safetensors ", path, ": '__metadata__' cannot name a tensor");
    HYDRA_CHECK(t.defined(), "save_safetensors ", path, ": tensor '", name, "' is undefined");
    HYDRA_CHECK(!t.is_meta(), "save_safetensors ", path, ": tensor '", name,
                "' is a meta tensor (shape only, no data to write)");
    order.emplace_back(name, kernels::contiguous_raw(t));
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return dtype_size(a.second.dtype()) > dtype_size(b.second.dtype());
  });
  std::map<std::string, std::pair<uint64_t, uint64_t>> offsets;
  uint64_t offset = 0;
  for (const auto& [name, t] : order) {
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype());
    offsets[name] = {offset, offset + nbytes};
    offset += nbytes;
  }

  // Header: __metadata__ first (only when there is some), then the names in sorted order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  for (const auto& [name, t] : tensors) {
    const auto& [begin, end] = offsets[name];
    header[name] = {
        {"dtype", safetensors_dtype_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {begin, end}}};
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    throw Error(detail::concat_message("save_safetensors ", path,
                                       ": a tensor name or metadata string is not valid UTF-8 (", e.what(), ")"));
  }
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');  // the data region starts 8-byte aligned
  const uint64_t n = text.size();
  char length[8];
  std::memcpy(length, &n, 8);

  AtomicFile out(path);
  out.write(length, 8);
  out.write(text);
  for (const auto& [name, t] : order)
    if (t.numel() > 0) out.write(t.raw_data(), static_cast<size_t>(t.numel()) * dtype_size(t.dtype()));
  out.commit();
}

}  // namespace hydra::io
