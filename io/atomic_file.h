// AtomicFile: write a file so that a crash at any instant leaves either the old file or the complete new
// one at `path`, never a truncated mix.
//
//   AtomicFile out(path);          // creates "<dir>/.<name>.tmp-<pid>-<n>" in the same directory
//   out.write(bytes, n); ...       // streams (a checkpoint need not fit in memory twice)
//   out.commit();                  // flush, fsync the file, rename over `path`, fsync the directory
//
// If commit() is never reached (an exception, an early return) the destructor removes the temp file and
// `path` is untouched. Errors throw hydra::Error naming the path and the failing system call.
// Multi-file outputs (an HF export) use write_directory_atomic: a temp directory renamed into place.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace hydra::io {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t nbytes);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  void commit();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  void discard() noexcept;

  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

// One call for small files: the whole content at once.
void write_file_atomic(const std::string& path, std::string_view bytes);

// fsync a directory so a rename inside it survives a power cut.
void fsync_directory(const std::string& dir);

}  // namespace hydra::io

namespace hydra::io {

// Creates directory `dir` (which must not exist; its parent must) atomically: `fill` writes the content
// into a temporary sibling directory, which is fsynced and renamed to `dir`. If `fill` throws, the
// temporary directory is removed and `dir` never appears.
void write_directory_atomic(const std::string& dir, const std::function<void(const std::string& temp_dir)>& fill);

}  // namespace hydra::io
