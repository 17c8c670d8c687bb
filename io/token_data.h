// Token files: the pre-tokenized training data a data loader reads windows from (docs/formats.md,
// 'Token files').
//
// open_token_file() detects the format from the first bytes (the extension only for .zst):
//
//   NumPy .npy        "\x93NUMPY" header (io/npy.h's parser), 1-D, '<u2', '<u4', '<i4' or '<i8'.
//   llm.c shard       a 1024-byte header of 256 little-endian int32: [0] magic, [1] version, [2] token
//                     count; magic 20240520 with version 1 holds uint16 tokens (GPT-2), magic 20240801
//                     with version 7 holds uint32 tokens (LLaMA 3). The file must be exactly
//                     1024 + count x item size bytes.
//   zstd              a .zst file (or any file starting with the zstd frame magic 28 B5 2F FD) is
//                     decompressed into memory, then read as any of the other formats.
//   raw               anything else: headerless little-endian token ids (nanoGPT's train.bin,
//                     OLMo-core/Dolma's headerless .npy), uint16 or uint32 per TokenFileOptions::dtype.
//                     With dtype Auto the vocabulary decides: uint16 when vocab_size <= 65536, else
//                     uint32. NOTE: OLMo-core picks the smallest unsigned type holding vocab_size - 1,
//                     which is uint8 for a vocabulary of 256 or fewer; Hydra does not read uint8 and picks
//                     uint16 there, which is what nanoGPT writes even for its 65-character vocabulary.
//
// An explicit dtype is for raw files; a file whose header states another type is an error (the caller
// is confused about which data it has). Uncompressed files are memory-mapped (read-only, shared with the
// page cache), so opening a 100 GB file costs nothing until windows are read. NOTE: as with any mapping,
// a file truncated by another process while open makes reads past its new end fault (SIGBUS): token
// files are written once and then only read.
//
// Errors (hydra::Error, naming the file): a size that is not a multiple of the item size, an llm.c count
// that disagrees with the file size, a bad llm.c version, a .npy that is not 1-D or not an integer type,
// a zstd frame that is corrupt, truncated or larger than the cap, a file shorter than one training window
// (check_window), a token outside [0, vocab_size) (validate_tokens: the first offending position and
// value).
//
// The header parsers take (bytes, file size, file name) and do no I/O, so a fuzzer can call them.
// Not here: sharding across files, shuffling, document boundaries (the data loader's job).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "tensor/tensor.h"

namespace hydra::io {

// How token ids are stored in the file.
enum class TokenDType { Auto, UInt16, UInt32, Int32, Int64 };
const char* token_dtype_name(TokenDType dtype);  // "auto", "uint16", ...
// Parses "auto", "uint16", "uint32" (the choices offered for raw files); anything else is an error.
TokenDType parse_token_dtype(const std::string& name);
// The dtype Auto stands for with this vocabulary (see the NOTE above); vocab_size must be >= 1.
TokenDType default_token_dtype(int64_t vocab_size);

enum class TokenFormat { Raw, Npy, LlmcShard };
const char* token_format_name(TokenFormat format);  // "raw", "npy", "llm.c shard"

struct TokenFileOptions {
  TokenDType dtype = TokenDType::Auto;  // Auto, UInt16 or UInt32
  int64_t vocab_size = 0;               // 0: unknown (then a raw file needs an explicit dtype)
  // Largest decompressed size accepted for a .zst file (it is held in memory).
  uint64_t max_decompressed_bytes = uint64_t{16} << 30;
};

// llm.c shard header facts (https://github.com/karpathy/llm.c, dev/data/data_common.py).
inline constexpr uint64_t kLlmcHeaderBytes = 1024;  // 256 int32
inline constexpr int32_t kLlmcMagicUInt16 = 20240520;
inline constexpr int32_t kLlmcVersionUInt16 = 1;
inline constexpr int32_t kLlmcMagicUInt32 = 20240801;
inline constexpr int32_t kLlmcVersionUInt32 = 7;

// Where the ids are inside a file's (decompressed) bytes.
struct TokenLayout {
  TokenFormat format = TokenFormat::Raw;
  TokenDType dtype = TokenDType::UInt16;  // never Auto
  uint64_t data_start = 0;                // byte offset of the first id
  int64_t count = 0;                      // number of ids
};

// True when the bytes start with the llm.c magic of either version.
bool has_llmc_magic(std::string_view prefix);
// Validates an llm.c header: `prefix` holds the first bytes (all 1024, or the whole file if shorter).
TokenLayout parse_llmc_shard_header(std::string_view prefix, uint64_t file_size, const std::string& file);
// Detects the format of uncompressed token bytes and validates it (see the top of this file). `prefix`
// holds at least the first 1024 bytes (or the whole file) and all of a .npy header. No I/O.
TokenLayout parse_token_layout(std::string_view prefix, uint64_t file_size, const std::string& file,
                               const TokenFileOptions& options);

// A token file opened for reading. Copies share the mapping (or the decompressed buffer).
class TokenFile {
 public:
  const std::string& path() const { return path_; }
  TokenFormat format() const { return layout_.format; }
  TokenDType dtype() const { return layout_.dtype; }
  bool compressed() const { return compressed_; }
  int64_t size() const { return layout_.count; }  // number of token ids

  // Token i (0 <= i < size()).
  int64_t at(int64_t i) const;
  // Ids [begin, begin + n) into out[0..n), converted (int32 output needs ids below 2^31, which any
  // valid vocabulary guarantees; a larger id is an error).
  void read(int64_t begin, int64_t n, int64_t* out) const;
  void read(int64_t begin, int64_t n, int32_t* out) const;
  // The same window as a 1-D tensor of Int64 or Int32.
  Tensor window(int64_t begin, int64_t n, DType dtype = DType::Int64) const;

  // Error unless the file holds at least one training window of `window_length` ids (a window of
  // sequence length T needs T + 1 ids: the inputs and the targets shifted by one).
  void check_window(int64_t window_length) const;
  // Error at the first id outside [0, vocab_size), naming its position and value.
  void validate_tokens(int64_t vocab_size) const;
  // Smallest and largest id (both 0 for an empty file).
  std::pair<int64_t, int64_t> min_max() const;

 private:
  friend TokenFile open_token_file(const std::string& path, const TokenFileOptions& options);
  template <class Out>
  void read_into(int64_t begin, int64_t n, Out* out) const;

  std::string path_;
  TokenLayout layout_;
  bool compressed_ = false;
  std::shared_ptr<const void> owner_;  // the mapping or the decompressed bytes
  const unsigned char* ids_ = nullptr;  // the first id
};

TokenFile open_token_file(const std::string& path, const TokenFileOptions& options = {});

}  // namespace hydra::io
