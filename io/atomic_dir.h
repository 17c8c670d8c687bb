// Directory-level atomic writes: a multi-file directory (a model directory, a training checkpoint)
// that a crash at any instant leaves either absent, complete-old or complete-new, never half written.
//
//   DirectoryWriter w(target, /*replace=*/true);    // an empty temp dir next to target
//   write_file_atomic(w.file("a.json"), ...);       // each file written (and fsynced) inside it
//   w.commit();                                     // swap it in
//
// Names, all in target's parent directory P (same file system, so rename() is atomic):
//   P/<name>                        the committed directory; only ever created by a rename of a complete one
//   P/.<name>.hydra-tmp-<random>    a directory being written, with the marker .hydra-temp naming its
//                                   writer's pid (io/temp_files.h)
//   P/.<name>.hydra-old             the previous version, moved aside during a replace, with the marker
//                                   .hydra-old (written into <name> just before the move)
//
// commit(): (1) fsync the temp dir; (2) if <name> exists, mark it, rename it to .<name>.hydra-old and
// fsync P; (3) rename the temp dir to <name>, remove the temp marker from it and fsync P; (4) remove the
// old copy and fsync P. A kill between (2) and (3) leaves no <name> but a complete, marked .<name>.hydra-old;
// everywhere else <name> is complete (old before (3), new after). So a reader resolves the directory with
// committed_directory(): <name> when it exists, else the marked aside copy. The next writer first
// repairs what a kill left (recover_directory): it moves a marked aside copy back when <name> is missing,
// removes it when <name> exists, removes a marker a kill left inside <name>, and removes temp dirs whose
// marker names a process that is gone.
// Nothing without a marker is ever moved or removed, so a user's own ".<name>.tmp-notes/" or
// ".<name>.old/" beside the target is safe. On SIGINT/SIGTERM/SIGHUP the temp dir is removed by the
// signal handler (io/temp_files.h).
//
// One writer per target at a time (a second concurrent writer is not corrupted, but may fail).
// Not here: locking, keeping more than one old version.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace hydra::io {

class TempRegistration;  // io/temp_files.h

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
  std::unique_ptr<TempRegistration> registration_;
  bool replace_ = false;
  bool committed_ = false;
};

// Where the latest complete version of `target` is: target, or its aside copy after a kill in the
// middle of a replace; target when neither exists (so the caller's "not found" names it).
std::string committed_directory(const std::string& target);

// The target name an aside copy's file name stands for (".x.hydra-old" -> "x"), or "" if it is not one.
std::string target_of_aside_name(const std::string& file_name);

// Finishes or undoes an interrupted replace and removes dead writers' temp dirs (see above).
void recover_directory(const std::string& target);

// For crash tests only: called with the name of each step of DirectoryWriter::commit ("temp synced",
// "old moved aside", "new renamed in", "old removed") as it completes; nullptr (the default) for none.
void set_directory_commit_hook(std::function<void(const std::string& step)> hook);

}  // namespace hydra::io
