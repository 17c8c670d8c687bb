// safetensors: read and write the tensor file format of HuggingFace checkpoints and Hydra model dirs
// (docs/formats.md, 'safetensors').
//
// Layout of a file: an 8-byte little-endian N, then N bytes of UTF-8 JSON (the header), then the data.
// The header maps each tensor name to {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
// (byte offsets into the data region) plus an optional "__metadata__": {string: string}.
//
// The reader validates what the reference implementation validates, before allocating anything: N within
// the file and at most 100,000,000; the header valid JSON (an object, no duplicate names, nothing but
// whitespace around it); a known dtype, a non-negative integer shape and two integer offsets per tensor;
// shape x dtype size == end - begin without overflow; the offsets, sorted, tile the data region exactly
// (no gap, no overlap, nothing past the end, no trailing bytes); string-only __metadata__. Every error is
// a hydra::Error naming the file, the tensor when there is one, and what is wrong.
//
// The writer puts __metadata__ first and the names in sorted order in the header, lays the data out by
// (element size descending, name) so every tensor starts aligned to its element size, pads the header
// with spaces to a multiple of 8 bytes, and writes atomically (io/atomic_file.h).
//
// JSON whitespace (space, tab, CR, LF) before and after the header object is accepted: writers pad the
// header with spaces so the data starts aligned.
//
// Loading memory-maps the file (io/mmap_file.h). F32, F64, I32 and I64 tensors whose data sits at an
// address aligned to the element size are zero-copy views into the mapping (which stays mapped while any
// view lives); unaligned ones are copied. F16 and BF16 are widened to float32 (exact). Other valid dtypes
// (U8, I8, ...) parse, so a header can be inspected, but loading them is an error. Sharded checkpoints
// (model.safetensors.index.json) are in io/safetensors_index.h.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "io/input_file.h"
#include "io/mmap_file.h"
#include "tensor/tensor.h"

namespace hydra::io {

// Largest header accepted (the reference implementation's limit).
inline constexpr uint64_t kSafetensorsMaxHeaderSize = 100'000'000;

struct SafetensorsTensorInfo {
  std::string name;
  std::string dtype;        // as written in the file: "F32", "BF16", ...
  Shape shape;
  uint64_t data_begin = 0;  // byte offsets into the data region (which starts at data_start)
  uint64_t data_end = 0;
};

struct SafetensorsHeader {
  uint64_t header_size = 0;  // N, the JSON length including its padding
  uint64_t data_start = 0;   // 8 + N: file offset of the data region
  std::vector<SafetensorsTensorInfo> tensors;  // in data order (sorted by data_begin)
  std::map<std::string, std::string> metadata;
};

// Parses and validates a header. `prefix` holds the first bytes of the file — at least 8 + N of them, or
// the whole file if it is shorter — and `file_size` is the size of the whole file. `file` names it in
// errors. No I/O: the readers, the tests and the fuzzer all come through here.
SafetensorsHeader parse_safetensors_header(std::string_view prefix, uint64_t file_size, const std::string& file);

// Reads and validates the header of a file without loading any data.
SafetensorsHeader read_safetensors_header(const std::string& path);
SafetensorsHeader read_safetensors_header(const InputFile& in);

// Loads every tensor (views into the mapping or converted copies, see above) and, when `metadata` is
// given, the __metadata__ map.
// `mapping`, when given, receives the file's mapping (tests use it to check which tensors are views).
std::map<std::string, Tensor> load_safetensors(const std::string& path,
                                               std::map<std::string, std::string>* metadata = nullptr,
                                               std::shared_ptr<const MappedFile>* mapping = nullptr);

// One tensor of a mapped file (its header parsed from the same file): a zero-copy view for an aligned
// F32/F64/I32/I64 tensor of a copy-on-write mapping, a copy or a widening to float32 otherwise. An
// unloadable dtype is an error naming the tensor.
Tensor safetensors_tensor(const std::shared_ptr<const MappedFile>& file, const SafetensorsHeader& header,
                          const SafetensorsTensorInfo& t);

// Error naming the first tensor whose dtype load_safetensors cannot load.
void check_loadable_dtypes(const SafetensorsHeader& header, const std::string& file);

// Weights are float: F32, F16 or BF16 (integers, F64 and the 8-bit floats are not weights Hydra takes).
bool safetensors_is_float_weight(const std::string& dtype);
// Reads one float tensor of `in` (its header parsed from `in`) into dst[0 .. numel) as float32, with
// pread: F32 straight into dst, F16/BF16 through a 4 MiB staging buffer. Nothing is mapped, so a
// converter's memory holds the destination only. Any other dtype is an error naming the tensor.
void read_safetensors_floats(const InputFile& in, const SafetensorsHeader& header, const SafetensorsTensorInfo& t,
                             float* dst);

// Writes the tensors (any layout; meta tensors are an error) and the metadata atomically.
void save_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// "F32" for Float32, ...; and the reverse for the four dtypes Hydra loads (false for any other string).
const char* safetensors_dtype_name(DType dtype);
bool safetensors_dtype_from_name(const std::string& name, DType* dtype);

}  // namespace hydra::io
