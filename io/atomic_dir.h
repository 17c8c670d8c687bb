// Directory-level atomic writes: a multi-file directory (a model directory, a training checkpoint)
// that a crash at any instant leaves either absent, complete-old or complete-new, never half written.
//
//   DirectoryWriter w(target, /*replace=*/true);    // an empty temp dir next to target
//   write_file_atomic(w.file("a.json"), ...);       // each file written (and fsynced) inside it
//   w.commit();                                     // swap it in
//
// Names, all in target's parent directory P (same file system, so rename() is atomic):
//   P/<name>                    the committed directory; only ever created by a rename of a complete one
//   P/.<name>.tmp-<pid>-<n>     a directory being written
//   P/.<name>.old               the previous version, moved aside during a replace
//
// commit(): (1) fsync the temp dir; (2) if <name> exists, rename it to .<name>.old and fsync P;
// (3) rename the temp dir to <name> and fsync P; (4) remove .<name>.old and fsync P.
// A kill between (2) and (3) leaves no <name> but a complete .<name>.old; everywhere else <name> is
// complete (old before (3), new after). So a reader resolves the directory with committed_directory():
// <name> when it exists, else .<name>.old. The next writer first repairs what a kill left
// (recover_directory): it moves .<name>.old back when <name> is missing, removes a stale .<name>.old
// when <name> exists, and removes temp dirs whose writer process is gone.
//
// One writer per target at a time (a second concurrent writer is not corrupted, but may fail).
// Not here: locking, keeping more than one old version.
#pragma once

#include <functional>
#include <string>

namespace hydra::io {

class DirectoryWriter {
 public:
  // Repairs leftovers (see above) and creates the temp dir. Without `replace`, an existing target is an
  // error (nothing is touched); the parent directory must exist.
  DirectoryWriter(std::string target, bool replace);
  ~DirectoryWriter();  // removes the temp dir unless committed
  DirectoryWriter(const DirectoryWriter&) = delete;
  DirectoryWriter& operator=(const DirectoryWriter&) = delete;

  // The path of `name` inside the temp dir (where the caller writes, before commit).
  std::string file(const std::string& name) const;
  const std::string& temp_dir() const { return temp_; }
  const std::string& target() const { return target_; }
  void commit();

 private:
  std::string target_, temp_, temp_name_, aside_, parent_;
  bool replace_ = false;
  bool committed_ = false;
};

// Where the latest complete version of `target` is: target, or its aside copy after a kill in the
// middle of a replace; target when neither exists (so the caller's "not found" names it).
std::string committed_directory(const std::string& target);

// Finishes or undoes an interrupted replace and removes dead writers' temp dirs (see above).
void recover_directory(const std::string& target);

// For crash tests only: called with the name of each step of DirectoryWriter::commit ("temp synced",
// "old moved aside", "new renamed in", "old removed") as it completes; nullptr (the default) for none.
void set_directory_commit_hook(std::function<void(const std::string& step)> hook);

}  // namespace hydra::io
