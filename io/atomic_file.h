// AtomicFile: write a file so that a crash at any instant leaves either the old file or the complete new
// one at `path`, never a truncated mix.
//
//   AtomicFile out(path);          // creates "<dir>/.<name>.hydra-tmp-<random>" (io/temp_files.h)
//   out.write(bytes, n); ...       // streams (a checkpoint need not fit in memory twice)
//   out.commit();                  // flush, fsync the file, rename over `path`, fsync the directory
//
// If commit() is never reached (an exception, an early return) the destructor removes the temp file and
// `path` is untouched; on SIGINT/SIGTERM/SIGHUP the signal handler removes it (io/temp_files.h). An
// existing `path` that is not a regular file (a directory, a FIFO, a device) is refused before anything
// is written. Errors throw hydra::Error naming the path and the failing system call.
//
// A command with several outputs writes them all-or-nothing: check_distinct_outputs refuses two outputs
// naming one file, or an output that is one of the inputs; commit_together publishes only after every
// temp is complete and fsynced, with the renames back to back and signals deferred between them.
// Not here: directory-level atomic writes (a temp directory renamed into place, replacing an old one
// safely) for model directories and checkpoints: io/atomic_dir.h, which reuses fsync_directory().
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hydra::io {

class TempRegistration;  // io/temp_files.h

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t nbytes);
  void write(std::string_view bytes) { write(bytes.data(), bytes.size()); }
  void commit();
  // commit() in two halves, for commit_together: fsync and close the temp; rename it over the path.
  void prepare();
  void publish();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  void discard() noexcept;

  std::string path_;
  std::string temp_path_;
  std::unique_ptr<TempRegistration> registration_;
  int fd_ = -1;
  bool committed_ = false;
};

// Commits every file, all or nothing as far as a process can: each is written and fsynced first (any
// failure leaves every path untouched), then the renames run back to back with SIGINT/SIGTERM/SIGHUP
// deferred, then the directories are fsynced.
void commit_together(const std::vector<AtomicFile*>& files);

// A named path: {"--out", "logits.npy"}.
using NamedPath = std::pair<std::string, std::string>;
// Error unless every output names a different file and none is one of the inputs (files are compared
// by device and inode when they exist, else by their normalized absolute paths; a symlink or a hard
// link to an input counts as the input).
void check_distinct_outputs(const std::vector<NamedPath>& outputs, const std::vector<NamedPath>& inputs);

// One call for small files: the whole content at once.
void write_file_atomic(const std::string& path, std::string_view bytes);

// fsync a directory so a rename inside it survives a power cut.
void fsync_directory(const std::string& dir);

}  // namespace hydra::io
