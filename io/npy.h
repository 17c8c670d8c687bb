// NumPy .npy files: one tensor per file (logits out of `hydra forward`, token ids and residuals in;
// docs/formats.md, 'NumPy .npy').
//
// Layout: the magic "\x93NUMPY", a version byte pair (1.0, 2.0 or 3.0), the header length (uint16 for
// 1.0, uint32 for 2.0/3.0, little-endian), then the header — a Python dict literal such as
// "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" padded with spaces and ending in '\n' —
// and then the raw C-order data.
//
// Read: float32, float64, int32, int64 ('<f4', '<f8', '<i4', '<i8') and the unsigned token-id types
// uint16 and uint32 ('<u2', '<u4'), C order, little-endian; the data must be exactly shape x item size
// bytes. Tensor has no unsigned dtypes, so ids are widened to the smallest signed dtype holding every
// value: uint16 -> Int32, uint32 -> Int64. Anything else (big-endian, Fortran order, other dtypes,
// structured dtypes, a malformed header, a short or long file) is a hydra::Error naming the file.
// Write: version 1.0 (2.0 when the header does not fit in 64 KiB), the total header a multiple of 64
// bytes as NumPy writes it, atomically (io/atomic_file.h). Integer tensors can be written as '<u2' or
// '<u4' (every value range-checked first).
// Not here: memory-mapped token files (io/token_data.h reads those, reusing parse_npy_header), uint8.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "tensor/tensor.h"

namespace hydra::io {

// Largest header accepted (NumPy's own reader stops at 10,000 bytes by default; this is generous).
inline constexpr uint64_t kNpyMaxHeaderSize = 1 << 20;

struct NpyHeader {
  int major_version = 1;
  std::string descr;         // "<f4", ...
  bool fortran_order = false;
  Shape shape;
  DType dtype = DType::Float32;  // what load_npy returns ('<u2' -> Int32, '<u4' -> Int64)
  uint64_t item_size = 4;       // bytes per element in the file (2 for '<u2')
  uint64_t data_start = 0;      // file offset of the data
};

// Parses and validates a header. `prefix` holds the first bytes of the file (all of the header, or the
// whole file if shorter), `file_size` the size of the whole file, `file` names it in errors. No I/O.
NpyHeader parse_npy_header(std::string_view prefix, uint64_t file_size, const std::string& file);

Tensor load_npy(const std::string& path);

// Writes any layout (meta tensors are an error) as a C-order array.
void save_npy(const std::string& path, const Tensor& tensor);
// The same into an open AtomicFile the caller commits (with others: io/atomic_file.h's commit_together).
class AtomicFile;
void save_npy(AtomicFile& out, const Tensor& tensor);
// Writes with the given descr: the tensor's own ('<f4' for Float32, ...) or, for an Int32/Int64 tensor,
// '<u2' or '<u4' (token ids: half or a quarter of the bytes); a value out of range is an error naming
// its index, and nothing is written.
void save_npy(const std::string& path, const Tensor& tensor, const std::string& descr);

// The header dict NumPy writes for this dtype and shape: "{'descr': '<f4', 'fortran_order': False,
// 'shape': (2, 3), }" (without padding).
std::string npy_header_dict(DType dtype, const Shape& shape);
std::string npy_header_dict(const std::string& descr, const Shape& shape);

}  // namespace hydra::io
