// Token files: format detection, the llm.c header, zstd decompression and window reads (see token_data.h).
#include "io/token_data.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <vector>

#include "io/mmap_file.h"
#include "io/npy.h"
#include "io/zstd.h"
#include "tensor/error.h"

static_assert(std::endian::native == std::endian::little, "token files are read as host memory");

namespace hydra::io {

namespace {

uint64_t item_size(TokenDType dtype) {
  switch (dtype) {
    case TokenDType::UInt16: return 2;
    case TokenDType::UInt32: return 4;
    case TokenDType::Int32: return 4;
    case TokenDType::Int64: return 8;
    case TokenDType::Auto: break;
  }
  HYDRA_ASSERT(false, "item_size of TokenDType::Auto");
  return 0;
}

int32_t read_i32(std::string_view bytes, size_t index) {
  int32_t v;
  std::memcpy(&v, bytes.data() + 4 * index, 4);
  return v;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

const char* token_dtype_name(TokenDType dtype) {
  switch (dtype) {
    case TokenDType::Auto: return "auto";
    case TokenDType::UInt16: return "uint16";
    case TokenDType::UInt32: return "uint32";
    case TokenDType::Int32: return "int32";
    case TokenDType::Int64: return "int64";
  }
  return "unknown";
}

TokenDType parse_token_dtype(const std::string& name) {
  for (TokenDType d : {TokenDType::Auto, TokenDType::UInt16, TokenDType::UInt32})
    if (name == token_dtype_name(d)) return d;
  throw Error("unknown token dtype '" + name + "'; expected auto, uint16 or uint32");
}

TokenDType default_token_dtype(int64_t vocab_size) {
  HYDRA_CHECK(vocab_size >= 1, "vocab_size must be at least 1, got ", vocab_size);
  if (vocab_size <= 65536) return TokenDType::UInt16;
  HYDRA_CHECK(vocab_size <= (int64_t{1} << 32), "vocab_size ", vocab_size,
              " does not fit in uint32 token ids (at most 4294967296)");
  return TokenDType::UInt32;
}

const char* token_format_name(TokenFormat format) {
  switch (format) {
    case TokenFormat::Raw: return "raw";
    case TokenFormat::Npy: return "npy";
    case TokenFormat::LlmcShard: return "llm.c shard";
  }
  return "unknown";
}

bool has_llmc_magic(std::string_view prefix) {
  if (prefix.size() < 4) return false;
  const int32_t magic = read_i32(prefix, 0);
  return magic == kLlmcMagicUInt16 || magic == kLlmcMagicUInt32;
}

TokenLayout parse_llmc_shard_header(std::string_view prefix, uint64_t file_size, const std::string& file) {
  HYDRA_ASSERT(prefix.size() <= file_size, "prefix longer than the file");
  HYDRA_CHECK(file_size >= kLlmcHeaderBytes, "invalid llm.c shard ", file, ": the file is ", file_size,
              " bytes, shorter than the ", kLlmcHeaderBytes, "-byte header");
  HYDRA_ASSERT(prefix.size() >= kLlmcHeaderBytes, "parse_llmc_shard_header needs the whole header");
  const int32_t magic = read_i32(prefix, 0), version = read_i32(prefix, 1), count = read_i32(prefix, 2);
  TokenLayout layout;
  layout.format = TokenFormat::LlmcShard;
  layout.data_start = kLlmcHeaderBytes;
  int32_t want_version = 0;
  if (magic == kLlmcMagicUInt16) {
    layout.dtype = TokenDType::UInt16;
    want_version = kLlmcVersionUInt16;
  } else if (magic == kLlmcMagicUInt32) {
    layout.dtype = TokenDType::UInt32;
    want_version = kLlmcVersionUInt32;
  } else {
    throw Error(detail::concat_message("invalid llm.c shard ", file, ": magic ", magic, ", expected ",
                                       kLlmcMagicUInt16, " (uint16 tokens) or ", kLlmcMagicUInt32,
                                       " (uint32 tokens)"));
  }
  HYDRA_CHECK(version == want_version, "invalid llm.c shard ", file, ": version ", version, " with magic ", magic,
              "; expected version ", want_version);
  HYDRA_CHECK(count >= 0, "invalid llm.c shard ", file, ": negative token count ", count, " in the header");
  layout.count = count;
  const uint64_t expected = kLlmcHeaderBytes + static_cast<uint64_t>(count) * item_size(layout.dtype);
  HYDRA_CHECK(expected == file_size, "invalid llm.c shard ", file, ": the header says ", count, " ",
              token_dtype_name(layout.dtype), " tokens (", expected, " bytes with the header) but the file has ",
              file_size, " bytes");
  return layout;
}

TokenLayout parse_token_layout(std::string_view prefix, uint64_t file_size, const std::string& file,
                               const TokenFileOptions& options) {
  HYDRA_CHECK(options.dtype == TokenDType::Auto || options.dtype == TokenDType::UInt16 ||
                  options.dtype == TokenDType::UInt32,
              "token file ", file, ": the requested dtype must be auto, uint16 or uint32, got ",
              token_dtype_name(options.dtype));
  TokenLayout layout;
  if (prefix.size() >= 6 && std::memcmp(prefix.data(), "\x93NUMPY", 6) == 0) {
    const NpyHeader h = parse_npy_header(prefix, file_size, file);
    HYDRA_CHECK(h.shape.size() == 1, "token file ", file, ": a .npy of token ids must be 1-D, got shape ",
                shape_str(h.shape));
    layout.format = TokenFormat::Npy;
    if (h.descr == "<u2") layout.dtype = TokenDType::UInt16;
    else if (h.descr == "<u4") layout.dtype = TokenDType::UInt32;
    else if (h.descr == "<i4") layout.dtype = TokenDType::Int32;
    else if (h.descr == "<i8") layout.dtype = TokenDType::Int64;
    else
      throw Error("token file " + file + ": a .npy of token ids must hold integers ('<u2', '<u4', '<i4' or " +
                  "'<i8'), got '" + h.descr + "'");
    layout.data_start = h.data_start;
    layout.count = h.shape[0];
  } else if (has_llmc_magic(prefix)) {
    layout = parse_llmc_shard_header(prefix, file_size, file);
  } else {
    layout.format = TokenFormat::Raw;
    HYDRA_CHECK(options.dtype != TokenDType::Auto || options.vocab_size > 0, "token file ", file,
                " has no header (a raw token file): give the token dtype (uint16 or uint32) or the vocabulary "
                "size to choose it");
    layout.dtype = options.dtype != TokenDType::Auto ? options.dtype : default_token_dtype(options.vocab_size);
    const uint64_t size = item_size(layout.dtype);
    HYDRA_CHECK(file_size % size == 0, "raw token file ", file, " is ", file_size, " bytes, not a multiple of ", size,
                " (", token_dtype_name(layout.dtype), " tokens); is the token dtype right?");
    layout.count = static_cast<int64_t>(file_size / size);
    return layout;
  }
  HYDRA_CHECK(options.dtype == TokenDType::Auto || options.dtype == layout.dtype, "token file ", file, " holds ",
              token_dtype_name(layout.dtype), " tokens (its ", token_format_name(layout.format),
              " header says so) but ", token_dtype_name(options.dtype),
              " was requested; the token dtype option is for raw files");
  return layout;
}

TokenFile open_token_file(const std::string& path, const TokenFileOptions& options) {
  // Read-only: a token file may be far larger than memory, and nothing writes to it.
  std::shared_ptr<const MappedFile> mapping = MappedFile::open(path, "token file", MapAccess::ReadOnly);
  const std::string_view bytes = mapping->bytes();
  TokenFile f;
  f.path_ = path;
  if (has_zstd_magic(bytes) || ends_with(path, ".zst")) {
    const std::string name = path + " (decompressed)";
    auto plain = std::make_shared<const std::string>(zstd_decompress(bytes, path, options.max_decompressed_bytes));
    HYDRA_CHECK(!has_zstd_magic(*plain), "token file ", name, " is zstd-compressed again; decompress it once");
    f.layout_ = parse_token_layout(*plain, plain->size(), name, options);
    f.compressed_ = true;
    f.ids_ = reinterpret_cast<const unsigned char*>(plain->data()) + f.layout_.data_start;
    f.owner_ = std::move(plain);
  } else {
    f.layout_ = parse_token_layout(bytes, bytes.size(), path, options);
    f.ids_ = reinterpret_cast<const unsigned char*>(mapping->data()) + f.layout_.data_start;
    f.owner_ = std::move(mapping);
  }
  return f;
}

int64_t TokenFile::at(int64_t i) const {
  int64_t v = 0;
  read(i, 1, &v);
  return v;
}

template <class Out>
void TokenFile::read_into(int64_t begin, int64_t n, Out* out) const {
  HYDRA_CHECK(begin >= 0 && n >= 0 && begin <= size() && n <= size() - begin, "token file ", path_,
              ": window [", begin, ", ", begin + n, ") is outside its ", size(), " tokens");
  auto copy = [&](auto tag) {
    using In = decltype(tag);
    const unsigned char* p = ids_ + static_cast<size_t>(begin) * sizeof(In);
    for (int64_t i = 0; i < n; ++i) {
      In v;
      std::memcpy(&v, p + static_cast<size_t>(i) * sizeof(In), sizeof(In));  // any alignment
      const int64_t wide = static_cast<int64_t>(v);  // exact for every stored type (at most uint32/int64)
      if constexpr (sizeof(Out) < sizeof(int64_t)) {
        HYDRA_CHECK(wide >= std::numeric_limits<Out>::min() && wide <= std::numeric_limits<Out>::max(),
                    "token file ", path_, ": token ", wide, " at position ", begin + i, " does not fit in int32");
      }
      out[i] = static_cast<Out>(wide);
    }
  };
  switch (layout_.dtype) {
    case TokenDType::UInt16: copy(uint16_t{}); break;
    case TokenDType::UInt32: copy(uint32_t{}); break;
    case TokenDType::Int32: copy(int32_t{}); break;
    case TokenDType::Int64: copy(int64_t{}); break;
    case TokenDType::Auto: HYDRA_ASSERT(false, "a TokenFile with dtype Auto");
  }
}

void TokenFile::read(int64_t begin, int64_t n, int64_t* out) const { read_into(begin, n, out); }
void TokenFile::read(int64_t begin, int64_t n, int32_t* out) const { read_into(begin, n, out); }

Tensor TokenFile::window(int64_t begin, int64_t n, DType dtype) const {
  HYDRA_CHECK(dtype == DType::Int64 || dtype == DType::Int32, "token file ", path_,
              ": a window is read as int64 or int32, not ", dtype_name(dtype));
  HYDRA_CHECK(n >= 0, "token file ", path_, ": negative window length ", n);
  Tensor t = empty({n}, dtype);
  if (dtype == DType::Int64) read(begin, n, t.data<int64_t>());
  else read(begin, n, t.data<int32_t>());
  return t;
}

void TokenFile::check_window(int64_t window_length) const {
  HYDRA_CHECK(window_length >= 1, "token file ", path_, ": the window length must be at least 1, got ",
              window_length);
  HYDRA_CHECK(size() >= window_length, "token file ", path_, " holds ", size(),
              " tokens, fewer than one training window of ", window_length, " tokens");
}

void TokenFile::validate_tokens(int64_t vocab_size) const {
  HYDRA_CHECK(vocab_size >= 1, "vocab_size must be at least 1, got ", vocab_size);
  // Read in blocks through the same conversion as training reads (int64 holds every stored type
  // except uint64, which is not read at all).
  constexpr int64_t kBlock = 1 << 16;
  std::vector<int64_t> block(static_cast<size_t>(std::min<int64_t>(kBlock, size())));
  for (int64_t start = 0; start < size(); start += kBlock) {
    const int64_t n = std::min(kBlock, size() - start);
    read(start, n, block.data());
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = block[static_cast<size_t>(i)];
      HYDRA_CHECK(v >= 0 && v < vocab_size, "token file ", path_, ": token ", v, " at position ", start + i,
                  " is outside the vocabulary [0, ", vocab_size, ")");
    }
  }
}

std::pair<int64_t, int64_t> TokenFile::min_max() const {
  if (size() == 0) return {0, 0};
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = std::numeric_limits<int64_t>::min();
  constexpr int64_t kBlock = 1 << 16;
  std::vector<int64_t> block(static_cast<size_t>(std::min<int64_t>(kBlock, size())));
  for (int64_t start = 0; start < size(); start += kBlock) {
    const int64_t n = std::min(kBlock, size() - start);
    read(start, n, block.data());
    for (int64_t i = 0; i < n; ++i) {
      lo = std::min(lo, block[static_cast<size_t>(i)]);
      hi = std::max(hi, block[static_cast<size_t>(i)]);
    }
  }
  return {lo, hi};
}

}  // namespace hydra::io
