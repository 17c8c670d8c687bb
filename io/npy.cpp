// NumPy .npy reader and writer (the format and the rules are in npy.h).
#include "io/npy.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <vector>

#include "io/atomic_file.h"
#include "io/input_file.h"
#include "tensor/copy.h"
#include "tensor/error.h"

static_assert(std::endian::native == std::endian::little, ".npy data is read and written as host memory");

namespace hydra::io {

namespace {

constexpr char kMagic[] = "\x93NUMPY";  // 6 bytes (plus the terminating NUL, not part of the format)
constexpr size_t kMagicSize = 6;
constexpr size_t kAlign = 64;           // NumPy aligns the data to 64 bytes
constexpr const char* kSupported =
    "'<f4' (float32), '<f8' (float64), '<i4' (int32), '<i8' (int64), '<u2' (uint16) or '<u4' (uint32)";

template <class... Args>
[[noreturn]] void fail(const std::string& file, const Args&... args) {
  throw Error(detail::concat_message("invalid .npy file ", file, ": ", args...));
}

const char* descr_of(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "<f4";
    case DType::Float64: return "<f8";
    case DType::Int32: return "<i4";
    case DType::Int64: return "<i8";
    case DType::BFloat16: break;
  }
  HYDRA_CHECK(false, ".npy has no ", dtype_name(dtype), " type (convert the tensor to float32 first)");
  return "";
}

// The header is a Python dict literal with exactly the keys 'descr', 'fortran_order' and 'shape'.
// This parses the subset NumPy writes: quoted strings, True/False, tuples of non-negative integers (an
// 'L' suffix, as Python 2 wrote them, is accepted), spaces anywhere, optional trailing commas.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& file) : text_(text), file_(file) {}

  NpyHeader parse() {
    NpyHeader h;
    bool seen_descr = false, seen_fortran = false, seen_shape = false;
    expect('{');
    while (true) {
      skip_spaces();
      if (peek() == '}') break;
      const std::string key = parse_string();
      expect(':');
      skip_spaces();
      if (key == "descr") {
        if (seen_descr) error("duplicate key 'descr'");
        if (peek() == '[') error("structured dtypes are not supported (descr is a list)");
        h.descr = parse_string();
        seen_descr = true;
      } else if (key == "fortran_order") {
        if (seen_fortran) error("duplicate key 'fortran_order'");
        h.fortran_order = parse_bool();
        seen_fortran = true;
      } else if (key == "shape") {
        if (seen_shape) error("duplicate key 'shape'");
        h.shape = parse_shape();
        seen_shape = true;
      } else {
        error("unexpected key '" + key + "'");
      }
      skip_spaces();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      skip_spaces();
      if (peek() != '}') error("expected ',' or '}'");
    }
    ++pos_;  // '}'
    skip_spaces();
    if (pos_ != text_.size()) error("unexpected text after the dict");
    if (!seen_descr || !seen_fortran || !seen_shape)
      fail(file_, "header lacks ", !seen_descr ? "'descr'" : !seen_fortran ? "'fortran_order'" : "'shape'",
           " (it must have 'descr', 'fortran_order' and 'shape')");
    return h;
  }

 private:
  [[noreturn]] void error(const std::string& what) const {
    // The header is quoted (the first 200 characters) so the reader can see what the writer did.
    const std::string_view shown = text_.substr(0, 200);
    fail(file_, "malformed header: ", what, " at character ", pos_, " of \"", shown,
         shown.size() < text_.size() ? "...\"" : "\"");
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void skip_spaces() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' ||
                                   text_[pos_] == '\r'))
      ++pos_;
  }
  void expect(char c) {
    skip_spaces();
    if (peek() != c) error(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string parse_string() {
    skip_spaces();
    const char quote = peek();
    if (quote != '\'' && quote != '"') error("expected a quoted string");
    const size_t start = ++pos_;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      if (text_[pos_] == '\\') error("escapes in strings are not supported");
      ++pos_;
    }
    if (pos_ == text_.size()) error("unterminated string");
    return std::string(text_.substr(start, pos_++ - start));
  }
  bool parse_bool() {
    for (const bool value : {true, false}) {
      const std::string_view word = value ? "True" : "False";
      if (text_.substr(pos_, word.size()) == word) {
        pos_ += word.size();
        return value;
      }
    }
    error("expected True or False");
  }
  Shape parse_shape() {
    expect('(');
    Shape shape;
    while (true) {
      skip_spaces();
      if (peek() == ')') break;
      if (peek() == '-') error("negative dimension in shape");
      if (peek() < '0' || peek() > '9') error("expected a dimension in shape");
      int64_t dim = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (__builtin_mul_overflow(dim, int64_t{10}, &dim) || __builtin_add_overflow(dim, peek() - '0', &dim))
          error("shape dimension too large");
        ++pos_;
      }
      if (peek() == 'L') ++pos_;
      shape.push_back(dim);
      skip_spaces();
      if (peek() == ',') {
        ++pos_;
        continue;
      }
      if (peek() != ')') error("expected ',' or ')' in shape");
    }
    ++pos_;  // ')'
    // NOTE: "(n)" is accepted as (n,), though in Python it is an int; NumPy never writes it.
    return shape;
  }

  std::string_view text_;
  const std::string& file_;
  size_t pos_ = 0;
};

// The on-disk element types read, the Tensor dtype each becomes and its size. Unsigned ids are widened
// to the next signed dtype that holds every value: uint16 -> int32, uint32 -> int64.
struct DiskType {
  const char* descr;
  DType dtype;
  uint64_t item_size;
};
constexpr DiskType kDiskTypes[] = {
    {"<f4", DType::Float32, 4}, {"<f8", DType::Float64, 8}, {"<i4", DType::Int32, 4},
    {"<i8", DType::Int64, 8},   {"<u2", DType::Int32, 2},   {"<u4", DType::Int64, 4},
};

const DiskType& disk_type_of_descr(const std::string& descr, const std::string& file) {
  for (const DiskType& d : kDiskTypes)
    if (descr == d.descr) return d;
  if (!descr.empty() && descr[0] == '>')
    fail(file, "big-endian dtype '", descr, "' is not supported; expected ", kSupported);
  fail(file, "unsupported dtype '", descr, "'; expected ", kSupported);
}

}  // namespace

NpyHeader parse_npy_header(std::string_view prefix, uint64_t file_size, const std::string& file) {
  HYDRA_ASSERT(prefix.size() <= file_size, "prefix longer than the file");
  if (prefix.size() < kMagicSize || std::memcmp(prefix.data(), kMagic, kMagicSize) != 0)
    fail(file, "not a NumPy .npy file (it does not start with \\x93NUMPY)");
  if (prefix.size() < kMagicSize + 2) fail(file, "the file ends inside the version bytes");
  const int major = static_cast<unsigned char>(prefix[6]);
  const int minor = static_cast<unsigned char>(prefix[7]);
  if (major < 1 || major > 3 || minor != 0)
    fail(file, "unsupported format version ", major, ".", minor, "; expected 1.0, 2.0 or 3.0");
  const size_t length_size = major == 1 ? 2 : 4;
  if (prefix.size() < kMagicSize + 2 + length_size) fail(file, "the file ends inside the header length");
  uint64_t header_size = 0;
  if (length_size == 2) {
    uint16_t n = 0;
    std::memcpy(&n, prefix.data() + 8, 2);
    header_size = n;
  } else {
    uint32_t n = 0;
    std::memcpy(&n, prefix.data() + 8, 4);
    header_size = n;
  }
  const uint64_t header_start = kMagicSize + 2 + length_size;
  if (header_size > kNpyMaxHeaderSize)
    fail(file, "header length ", header_size, " exceeds the limit of ", kNpyMaxHeaderSize, " bytes");
  if (header_start + header_size > file_size)
    fail(file, "header length ", header_size, " goes beyond the end of the file (", file_size, " bytes)");
  if (prefix.size() < header_start + header_size)
    fail(file, "only ", prefix.size(), " bytes given, the header needs ", header_start + header_size);

  NpyHeader parsed = HeaderParser(prefix.substr(header_start, header_size), file).parse();
  parsed.major_version = major;
  parsed.data_start = header_start + header_size;
  if (parsed.fortran_order)
    fail(file, "Fortran-order arrays are not supported; save a C-order array (numpy.ascontiguousarray)");
  const DiskType& disk = disk_type_of_descr(parsed.descr, file);
  parsed.dtype = disk.dtype;
  parsed.item_size = disk.item_size;

  // Size with overflow checks (the header may claim anything); a zero dimension makes it 0 regardless.
  uint64_t nbytes = parsed.item_size;
  bool overflow = false;
  for (int64_t d : parsed.shape)
    overflow = overflow || __builtin_mul_overflow(nbytes, static_cast<uint64_t>(d), &nbytes);
  if (std::find(parsed.shape.begin(), parsed.shape.end(), 0) != parsed.shape.end()) {
    overflow = false;
    nbytes = 0;
  }
  const uint64_t have = file_size - parsed.data_start;
  if (overflow || nbytes != have)
    fail(file, "shape ", shape_str(parsed.shape), " of '", parsed.descr, "' needs ",
         overflow ? std::string("more bytes than any file holds") : std::to_string(nbytes) + " bytes", " but ",
         have, " follow the header");
  return parsed;
}

Tensor load_npy(const std::string& path) {
  const InputFile in = InputFile::open(path, ".npy file");
  const uint64_t file_size = in.size();
  auto read_at = [&](void* dst, uint64_t n, uint64_t offset) { in.read_at(dst, n, offset); };
  // The fixed part (magic, version, length) first, then as much header as it announces (within limits).
  std::string prefix = in.read_prefix(12);
  if (prefix.size() >= 10 && std::memcmp(prefix.data(), kMagic, kMagicSize) == 0) {
    uint64_t header_size = 0;
    const size_t length_size = prefix[6] == 1 ? 2 : 4;
    if (prefix.size() >= 8 + length_size) {
      std::memcpy(&header_size, prefix.data() + 8, length_size);  // little-endian: low bytes first
      const uint64_t end = 8 + length_size + header_size;
      if (header_size <= kNpyMaxHeaderSize && end <= file_size && end > prefix.size()) prefix = in.read_prefix(end);
    }
  }
  const NpyHeader h = parse_npy_header(prefix, file_size, path);
  Tensor t = empty(h.shape, h.dtype);
  const uint64_t nbytes = file_size - h.data_start;
  if (nbytes == 0) return t;
  if (h.item_size == dtype_size(h.dtype)) {
    read_at(t.raw_data(), nbytes, h.data_start);
  } else {
    // uint16/uint32 ids, widened element by element from a staging copy of the file's bytes.
    std::vector<char> narrow(nbytes);
    read_at(narrow.data(), nbytes, h.data_start);
    const int64_t n = t.numel();
    if (h.descr == "<u2") {
      int32_t* out = t.data<int32_t>();
      for (int64_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, narrow.data() + 2 * i, 2);
        out[i] = v;
      }
    } else {
      HYDRA_ASSERT(h.descr == "<u4", "unexpected widened descr ", h.descr);
      int64_t* out = t.data<int64_t>();
      for (int64_t i = 0; i < n; ++i) {
        uint32_t v;
        std::memcpy(&v, narrow.data() + 4 * i, 4);
        out[i] = v;
      }
    }
  }
  return t;
}

std::string npy_header_dict(const std::string& descr, const Shape& shape) {
  // Python's repr of a tuple: "()", "(5,)", "(2, 3)".
  std::string tuple = "(";
  for (size_t i = 0; i < shape.size(); ++i) tuple.append(i ? ", " : "").append(std::to_string(shape[i]));
  tuple += shape.size() == 1 ? ",)" : ")";
  return "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + tuple + ", }";
}

std::string npy_header_dict(DType dtype, const Shape& shape) { return npy_header_dict(descr_of(dtype), shape); }

namespace {

// Header (magic, version, length, padded dict) + data, as NumPy's _wrap_header lays it out: dict,
// spaces, '\n', the whole header ending on a multiple of 64 bytes; version 1.0 while the length fits in
// 16 bits, else 2.0.
void write_npy(AtomicFile& out, const std::string& descr, const Shape& shape, const void* data, size_t nbytes) {
  const std::string dict = npy_header_dict(descr, shape);
  std::string header;
  int version = 1;
  for (version = 1; version <= 2; ++version) {
    const size_t length_size = version == 1 ? 2 : 4;
    const size_t pad = kAlign - (kMagicSize + 2 + length_size + dict.size() + 1) % kAlign;
    header = dict + std::string(pad, ' ') + "\n";
    if (version == 2 || header.size() <= std::numeric_limits<uint16_t>::max()) break;
  }
  std::string prefix(kMagic, kMagicSize);
  prefix += static_cast<char>(version);
  prefix += '\0';
  const uint32_t n = static_cast<uint32_t>(header.size());
  prefix.append(reinterpret_cast<const char*>(&n), version == 1 ? 2 : 4);  // little-endian

  out.write(prefix);
  out.write(header);
  if (nbytes > 0) out.write(data, nbytes);
}

void write_npy(const std::string& path, const std::string& descr, const Shape& shape, const void* data,
               size_t nbytes) {
  AtomicFile out(path);
  write_npy(out, descr, shape, data, nbytes);
  out.commit();
}

// The values of an integer tensor as unsigned UInt, each checked to fit; the first that does not is
// named with its row-major index.
template <class UInt>
std::vector<UInt> narrow_ids(const Tensor& t, const std::string& path, const std::string& descr) {
  const std::vector<int64_t> values = t.to_vector<int64_t>();
  std::vector<UInt> out(values.size());
  const int64_t max = std::numeric_limits<UInt>::max();
  for (size_t i = 0; i < values.size(); ++i) {
    HYDRA_CHECK(values[i] >= 0 && values[i] <= max, "save_npy ", path, ": value ", values[i], " at index ", i,
                " does not fit in '", descr, "' (0 to ", max, ")");
    out[i] = static_cast<UInt>(values[i]);
  }
  return out;
}

}  // namespace

void save_npy(AtomicFile& out, const Tensor& tensor) {
  HYDRA_CHECK(tensor.defined(), "save_npy ", out.path(), ": the tensor is undefined");
  HYDRA_CHECK(!tensor.is_meta(), "save_npy ", out.path(), ": a meta tensor has no data to write");
  const Tensor t = kernels::contiguous_raw(tensor);
  write_npy(out, descr_of(t.dtype()), t.shape(), t.numel() > 0 ? t.raw_data() : nullptr,
            static_cast<size_t>(t.numel()) * dtype_size(t.dtype()));
}

void save_npy(const std::string& path, const Tensor& tensor) {
  AtomicFile out(path);
  save_npy(out, tensor);
  out.commit();
}

void save_npy(const std::string& path, const Tensor& tensor, const std::string& descr) {
  HYDRA_CHECK(tensor.defined(), "save_npy ", path, ": the tensor is undefined");
  HYDRA_CHECK(!tensor.is_meta(), "save_npy ", path, ": a meta tensor has no data to write");
  if (descr == "<u2" || descr == "<u4") {
    HYDRA_CHECK(tensor.dtype() == DType::Int32 || tensor.dtype() == DType::Int64, "save_npy ", path,
                ": writing '", descr, "' needs an int32 or int64 tensor, got ", dtype_name(tensor.dtype()));
    if (descr == "<u2") {
      const std::vector<uint16_t> v = narrow_ids<uint16_t>(tensor, path, descr);
      write_npy(path, descr, tensor.shape(), v.data(), v.size() * 2);
    } else {
      const std::vector<uint32_t> v = narrow_ids<uint32_t>(tensor, path, descr);
      write_npy(path, descr, tensor.shape(), v.data(), v.size() * 4);
    }
    return;
  }
  HYDRA_CHECK(descr == descr_of(tensor.dtype()), "save_npy ", path, ": cannot write a ",
              dtype_name(tensor.dtype()), " tensor as '", descr, "'; expected '", descr_of(tensor.dtype()),
              "', '<u2' or '<u4'");
  save_npy(path, tensor);
}

}  // namespace hydra::io
