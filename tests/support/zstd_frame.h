// zstd frames for tests that build compressed files byte by byte: one frame with the checksum on.
#pragma once

#include <zstd.h>

#include <doctest/doctest.h>

#include <string>

namespace hydra::test {

// `plain` as one frame; `with_size` writes the content size into the frame header.
inline std::string zstd_frame(const std::string& plain, bool with_size = true, int level = 3) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, with_size ? 1 : 0);
  std::string out(ZSTD_compressBound(plain.size()), '\0');
  const size_t n = ZSTD_compress2(cctx, out.data(), out.size(), plain.data(), plain.size());
  ZSTD_freeCCtx(cctx);
  REQUIRE_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

}  // namespace hydra::test
