// zstd helpers: decompress a whole stream held in memory (safely, for hostile input) and compress a
// file as a stream (constant memory) with the frame checksum on.
//
// Decompression accepts one or more concatenated frames (as `cat a.zst b.zst` makes), skippable frames
// among them (their content is ignored), verifies each frame's checksum when it has one, and never allocates more than it is allowed: the sizes the frame
// headers declare are checked against a cap and against what the compressed bytes can possibly expand
// to (a zstd block of at most 128 KiB takes at least 4 bytes), before any allocation; without declared
// sizes the output grows step by step and stops at the cap. Errors are hydra::Error naming the file:
// not zstd, corrupt (including a checksum mismatch), truncated, too large.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace hydra::io {

// True when the bytes start with the zstd frame magic 28 B5 2F FD or a skippable frame's (50..5F 2A 4D 18).
bool has_zstd_magic(std::string_view prefix);

// The whole decompressed content of `compressed`. `file` names it in errors. No I/O.
std::string zstd_decompress(std::string_view compressed, const std::string& file, uint64_t max_bytes);

// Streams the file at `path` through the compressor at `level`, passing each piece of compressed output
// to `sink`. One frame, with the content size in its header and the frame checksum on
// (ZSTD_c_checksumFlag = 1).
void zstd_compress_file(const std::string& path, const std::function<void(const char*, size_t)>& sink,
                        int level = 3);

}  // namespace hydra::io
