// InputFile: the one way Hydra opens a file it reads (configs, weights, token files, tokenizers, texts,
// .npy inputs, checkpoints), so that no reader can be made to block, to read without end, or to hold
// more than it can justify.
//
//   const InputFile in = InputFile::open(path, "tokenizer file");   // a regular file, or hydra::Error
//   std::string text = in.read_all(kMaxTokenizerBytes);              // the whole file, within a cap
//   in.read_at(buffer, n, offset);                                    // exactly n bytes inside the file
//
// open(): O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, so opening a FIFO or a device never waits; then
// fstat on the descriptor (symlinks followed to what they name), and anything but a regular file — a
// FIFO, a socket, a character or block device such as /dev/zero, a directory — is an error naming the
// path and what it is. O_NONBLOCK is then cleared (it means nothing for regular files). The size fstat
// reports bounds every read: a file that grows while being read is read only up to that size, one that
// shrinks is an error. Errors: "cannot open <kind> <path>: <reason>", "cannot read <kind> <path>: ...".
//
// Not here: writing (io/atomic_file.h), memory maps (io/mmap_file.h, which opens through this).
#pragma once

#include <cstdint>
#include <string>

namespace hydra::io {

class InputFile {
 public:
  // `kind` says what the file should be, for messages ("safetensors file", "config.json").
  static InputFile open(const std::string& path, const std::string& kind);
  ~InputFile();
  InputFile(InputFile&& other) noexcept;
  InputFile& operator=(InputFile&&) = delete;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::string& path() const { return path_; }
  const std::string& kind() const { return kind_; }
  uint64_t size() const { return size_; }
  int fd() const { return fd_; }

  // Reads exactly n bytes at `offset`; offset + n must lie within size().
  void read_at(void* dst, uint64_t n, uint64_t offset) const;
  // The first min(n, size()) bytes.
  std::string read_prefix(uint64_t n) const;
  // The whole file; an error naming the cap when it is larger than max_bytes.
  std::string read_all(uint64_t max_bytes) const;

 private:
  InputFile(std::string path, std::string kind, int fd, uint64_t size)
      : path_(std::move(path)), kind_(std::move(kind)), fd_(fd), size_(size) {}
  std::string path_, kind_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// InputFile::open(path, kind).read_all(max_bytes).
std::string read_file(const std::string& path, const std::string& kind, uint64_t max_bytes);

}  // namespace hydra::io
