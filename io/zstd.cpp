// zstd in and out of memory, for .zst token files and the checkpoint's training_state.bin.zst.
#include "io/zstd.h"

#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "io/input_file.h"
#include "tensor/error.h"

namespace hydra::io {

namespace {

constexpr uint64_t kUnknownSize = std::numeric_limits<uint64_t>::max();

// The sum of the content sizes the frame headers declare, or kUnknownSize when a frame does not declare
// one or cannot be walked (corrupt or truncated: decompression then says which).
uint64_t declared_zstd_size(std::string_view compressed) {
  uint64_t total = 0;
  size_t pos = 0;
  while (pos < compressed.size()) {
    const char* frame = compressed.data() + pos;
    const size_t left = compressed.size() - pos;
    const unsigned long long size = ZSTD_getFrameContentSize(frame, left);  // 0 for a skippable frame
    if (size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR) return kUnknownSize;
    const size_t frame_bytes = ZSTD_findFrameCompressedSize(frame, left);
    if (ZSTD_isError(frame_bytes) || __builtin_add_overflow(total, size, &total)) return kUnknownSize;
    pos += frame_bytes;
  }
  return total;
}

}  // namespace

bool has_zstd_magic(std::string_view prefix) {
  if (prefix.size() < 4) return false;
  if (std::memcmp(prefix.data(), "\x28\xb5\x2f\xfd", 4) == 0) return true;
  // A skippable frame (magic 0x184D2A50 to 0x184D2A5F, little-endian): zstd streams may start with one.
  const auto* b = reinterpret_cast<const unsigned char*>(prefix.data());
  return (b[0] & 0xf0) == 0x50 && b[1] == 0x2a && b[2] == 0x4d && b[3] == 0x18;
}

std::string zstd_decompress(std::string_view compressed, const std::string& file, uint64_t max_bytes) {
  HYDRA_CHECK(has_zstd_magic(compressed), "invalid zstd file ", file,
              ": it does not start with the zstd frame magic 28 B5 2F FD (or a skippable frame's)");
  std::string out;
  const uint64_t declared = declared_zstd_size(compressed);
  // NOTE: a zstd block holds at most 128 KiB and takes at least 4 bytes (a 3-byte header and one RLE
  // byte), so no input expands by more than 32768x: a header claiming more is a lie, caught here
  // before allocating. (An error here means a corrupt or truncated frame: the streaming pass below
  // says which.)
  if (declared != kUnknownSize) {
    const uint64_t possible = static_cast<uint64_t>(compressed.size()) * 32768;
    HYDRA_CHECK(declared <= possible, "invalid zstd file ", file, ": its frames declare ", declared,
                " bytes, more than ", compressed.size(), " compressed bytes can hold");
    HYDRA_CHECK(declared <= max_bytes, "zstd file ", file, " decompresses to ", declared,
                " bytes, more than the limit of ", max_bytes, " bytes held in memory");
    out.reserve(declared);
  }
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  HYDRA_CHECK(dctx != nullptr, "cannot decompress ", file, ": out of memory for the zstd context");
  std::string chunk(ZSTD_DStreamOutSize(), '\0');
  ZSTD_inBuffer in{compressed.data(), compressed.size(), 0};
  size_t ret = 0;
  while (true) {
    ZSTD_outBuffer o{chunk.data(), chunk.size(), 0};
    ret = ZSTD_decompressStream(dctx.get(), &o, &in);
    // Frame checksums (when the writer turned them on) are verified here: a mismatch is an error.
    HYDRA_CHECK(!ZSTD_isError(ret), "corrupt zstd file ", file, ": ", ZSTD_getErrorName(ret), " (at compressed byte ",
                in.pos, ")");
    HYDRA_CHECK(out.size() + o.pos <= max_bytes, "zstd file ", file, " decompresses to more than the limit of ",
                max_bytes, " bytes held in memory");
    out.append(chunk.data(), o.pos);
    if (in.pos < in.size) continue;
    // All input is consumed. ret == 0: the last frame is complete and fully flushed (whatever o.pos is: a
    // frame may end exactly on the buffer's end). Otherwise a full buffer may hide more output still to
    // flush; a partly filled one means the decoder needs input that is not there (a truncated frame).
    if (ret == 0 || o.pos < o.size) break;
  }
  HYDRA_CHECK(ret == 0, "truncated zstd file ", file, ": the data ends inside a frame (", compressed.size(),
              " compressed bytes)");
  if (declared != kUnknownSize)
    HYDRA_CHECK(out.size() == declared, "corrupt zstd file ", file, ": decompressed to ", out.size(),
                " bytes but the frames declare ", declared);
  return out;
}

void zstd_compress_file(const std::string& path, const std::function<void(const char*, size_t)>& sink, int level) {
  const InputFile in = InputFile::open(path, "file to compress");
  const uint64_t size = in.size();
  std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> cctx(ZSTD_createCCtx(), ZSTD_freeCCtx);
  HYDRA_CHECK(cctx != nullptr, "cannot compress ", path, ": out of memory for the zstd context");
  // The frame checksum lets a reader detect corruption by itself; the pledged size puts the content
  // size into the frame header, so a reader can check it before allocating.
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx.get(), ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setPledgedSrcSize(cctx.get(), static_cast<unsigned long long>(size));
  std::vector<char> in_buffer(ZSTD_CStreamInSize()), out_buffer(ZSTD_CStreamOutSize());
  for (uint64_t done = 0;;) {
    // Exactly the size the file had when opened: a file that grows meanwhile is not read further.
    const uint64_t n = std::min<uint64_t>(in_buffer.size(), size - done);
    in.read_at(in_buffer.data(), n, done);
    done += n;
    const bool last = done == size;
    ZSTD_inBuffer piece{in_buffer.data(), static_cast<size_t>(n), 0};
    bool flushed = false;
    while (!flushed) {
      ZSTD_outBuffer out{out_buffer.data(), out_buffer.size(), 0};
      const size_t left = ZSTD_compressStream2(cctx.get(), &out, &piece, last ? ZSTD_e_end : ZSTD_e_continue);
      HYDRA_CHECK(!ZSTD_isError(left), "cannot compress ", path, ": ", ZSTD_getErrorName(left));
      if (out.pos > 0) sink(out_buffer.data(), out.pos);
      flushed = last ? left == 0 : piece.pos == piece.size;
    }
    if (last) break;
  }
}

}  // namespace hydra::io
