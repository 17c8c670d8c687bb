// DirectoryWriter: temp dir, fsync, rename aside, rename in, remove the old one (see atomic_dir.h).
#include "io/atomic_dir.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>

#include "io/atomic_file.h"
#include "io/input_file.h"
#include "io/temp_files.h"
#include "tensor/error.h"

namespace hydra::io {

namespace fs = std::filesystem;

namespace {

std::function<void(const std::string&)>& commit_hook() {
  static std::function<void(const std::string&)> hook;
  return hook;
}

void step_done(const std::string& step) {
  if (commit_hook()) commit_hook()(step);
}

// The marker written into a directory just before it is moved aside: only a marked aside copy is ever
// restored or removed.
constexpr const char* kAsideMarker = ".hydra-old";

// File names of the temp dirs this process is writing right now: a temp dir with this process's pid
// that is not listed here was left by an earlier writer in this process that never finished (only a
// crash test does that) and is as dead as one from a killed process.
std::mutex active_mutex;
std::set<std::string> active_temps;

bool temp_is_active(const std::string& file_name, long pid) {
  if (pid == ::getpid()) {
    std::lock_guard<std::mutex> lock(active_mutex);
    return active_temps.count(file_name) > 0;
  }
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH;
}

struct Names {
  std::string target, parent, name, aside;
};

Names names_of(const std::string& target) {
  HYDRA_CHECK(!target.empty(), "a directory path must not be empty");
  fs::path p = fs::path(target).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();  // "dir/" names dir
  Names n;
  n.target = p.string();
  n.name = p.filename().string();
  HYDRA_CHECK(!n.name.empty() && n.name != "." && n.name != "..", "cannot write the directory '", target,
              "': it has no name of its own");
  n.parent = p.has_parent_path() ? p.parent_path().string() : std::string(".");
  // NOTE: built with append, not `"." + string`: GCC 12 warns falsely (-Wrestrict) on the latter.
  n.aside = (fs::path(n.parent) / std::string(".").append(n.name).append(".hydra-old")).string();
  return n;
}

void rename_or_throw(const std::string& from, const std::string& to) {
  HYDRA_CHECK(::rename(from.c_str(), to.c_str()) == 0, "cannot rename ", from, " to ", to, ": ",
              std::strerror(errno));
}

// Removes a marked directory, its marker last: a kill part-way leaves it still marked (and so still
// removable later), or empty.
void remove_marked_directory(const fs::path& dir, const char* marker, std::error_code& ec) {
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().filename() == marker) continue;
    fs::remove_all(entry.path(), ec);
    if (ec) return;
  }
  if (ec) return;
  fs::remove(dir / marker, ec);
  if (!ec) fs::remove(dir, ec);
}

void remove_marked_or_throw(const fs::path& dir, const char* marker) {
  std::error_code ec;
  remove_marked_directory(dir, marker, ec);
  HYDRA_CHECK(!ec, "cannot remove ", dir.string(), ": ", ec.message());
}

// A real directory (not a symlink to one) holding the regular file `marker`.
bool is_marked_directory(const fs::path& dir, const char* marker) {
  std::error_code ec;
  return fs::symlink_status(dir, ec).type() == fs::file_type::directory &&
         fs::symlink_status(dir / marker, ec).type() == fs::file_type::regular;
}

// Writes a small marker file directly (no temp and rename: a kill must not leave a half-made marker's
// temp beside it); an interrupted write leaves a marker that does not parse, which counts as dead.
void write_marker(const fs::path& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  HYDRA_CHECK(fd >= 0, "cannot create ", path.string(), ": ", std::strerror(errno));
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int saved = errno;
  ::close(fd);
  HYDRA_CHECK(n == static_cast<ssize_t>(text.size()), "cannot write ", path.string(), ": ", std::strerror(saved));
}

// Whether the writer of a marked temp dir is gone: its marker names a process that no longer exists,
// or was cut short by a kill while being written.
bool temp_writer_gone(const fs::path& dir) {
  std::string text;
  try {
    text = read_file((dir / kTempMarker).string(), "temp marker", 64);
  } catch (const Error&) {
    return false;  // unreadable: leave it
  }
  long pid = -1;
  char newline = 0;
  if (std::sscanf(text.c_str(), "hydra temp %ld%c", &pid, &newline) != 2 || newline != '\n' || pid <= 0) return true;
  return !temp_is_active(dir.filename().string(), pid);
}

// Removes temp dirs of `n.name` whose writer is gone. Only Hydra's own can match: the exact name form
// and a real directory, holding the marker (io/temp_files.h). One without a marker yet (a kill between
// its mkdir and its marker) is removed only if empty, which loses nothing.
void remove_dead_temps(const Names& n) {
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(n.parent, ec)) {
    const std::string file = entry.path().filename().string();
    if (!is_temp_name(file, n.name)) continue;
    std::error_code ignored;
    if (fs::symlink_status(entry.path(), ignored).type() != fs::file_type::directory) continue;
    if (is_marked_directory(entry.path(), kTempMarker)) {
      if (temp_writer_gone(entry.path())) remove_marked_or_throw(entry.path(), kTempMarker);
    } else if (fs::is_empty(entry.path(), ignored)) {
      fs::remove(entry.path(), ignored);
    }
  }
  HYDRA_CHECK(!ec, "cannot list ", n.parent, ": ", ec.message());
}

}  // namespace

void set_directory_commit_hook(std::function<void(const std::string& step)> hook) { commit_hook() = std::move(hook); }

std::string target_of_aside_name(const std::string& file_name) {
  constexpr std::string_view kSuffix = ".hydra-old";
  if (file_name.size() <= kSuffix.size() + 1 || file_name[0] != '.' || !file_name.ends_with(kSuffix)) return "";
  return file_name.substr(1, file_name.size() - 1 - kSuffix.size());
}

std::string committed_directory(const std::string& target) {
  const Names n = names_of(target);
  std::error_code ec;
  if (!fs::exists(n.target, ec) && is_marked_directory(n.aside, kAsideMarker)) return n.aside;
  return target;
}

void recover_directory(const std::string& target) {
  const Names n = names_of(target);
  std::error_code ec;
  const bool have_target = fs::exists(n.target, ec);
  if (is_marked_directory(n.aside, kAsideMarker)) {
    // Killed between "old moved aside" and "new renamed in": the old version is the latest complete one.
    if (!have_target) rename_or_throw(n.aside, n.target);
    // Killed after "new renamed in": the old version is garbage (possibly half removed).
    else remove_marked_or_throw(n.aside, kAsideMarker);
    fsync_directory(n.parent);
  } else if (fs::symlink_status(n.aside, ec).type() == fs::file_type::directory && fs::is_empty(n.aside, ec)) {
    fs::remove(n.aside, ec);  // killed between removing its marker and the directory itself: nothing lost
  }
  // Markers left in the directory itself by a kill just before the move aside, just after a restore, or
  // just after the rename in.
  for (const char* marker : {kAsideMarker, kTempMarker}) {
    if (!is_marked_directory(n.target, marker)) continue;
    const fs::path stray = fs::path(n.target) / marker;
    fs::remove(stray, ec);
    HYDRA_CHECK(!ec, "cannot remove ", stray.string(), ": ", ec.message());
  }
  remove_dead_temps(n);
}

DirectoryWriter::DirectoryWriter(std::string target, bool replace) {
  const Names n = names_of(target);
  target_ = n.target;
  parent_ = n.parent;
  aside_ = n.aside;
  std::error_code ec;
  HYDRA_CHECK(fs::is_directory(parent_, ec), "cannot create '", target, "': parent directory '", parent_,
              "' does not exist");
  if (replace) {
    recover_directory(target_);
    HYDRA_CHECK(!fs::exists(target_, ec) || fs::is_directory(target_, ec), "cannot write the directory '", target,
                "': a file of that name exists");
  } else {
    HYDRA_CHECK(!fs::exists(target_, ec), "output directory '", target, "' already exists; choose a new path");
    remove_dead_temps(n);
  }
  temp_ = temp_path_for(target_);
  temp_name_ = fs::path(temp_).filename().string();
  HYDRA_CHECK(fs::create_directory(temp_, ec) && !ec, "cannot create the temporary directory ", temp_, ": ",
              ec ? ec.message() : std::string("it already exists"));
  registration_ = std::make_unique<TempRegistration>(temp_, /*is_directory=*/true);
  {
    std::lock_guard<std::mutex> lock(active_mutex);
    active_temps.insert(temp_name_);
  }
  // The marker first: from here on, a leftover of this writer is recognisably Hydra's.
  write_marker(file(kTempMarker), "hydra temp " + std::to_string(::getpid()) + "\n");
  replace_ = replace;
}

DirectoryWriter::~DirectoryWriter() {
  {
    std::lock_guard<std::mutex> lock(active_mutex);
    active_temps.erase(temp_name_);
  }
  if (committed_) return;
  std::error_code ignored;
  remove_marked_directory(temp_, kTempMarker, ignored);
}

std::string DirectoryWriter::file(const std::string& name) const { return (fs::path(temp_) / name).string(); }

void DirectoryWriter::commit() {
  HYDRA_CHECK(!committed_, "the directory ", target_, " is already committed");
  std::error_code ec;
  fsync_directory(temp_);
  step_done("temp synced");
  signal_point("directory written");
  const bool replacing = fs::exists(target_, ec);
  if (replacing) {
    HYDRA_CHECK(replace_, "output directory '", target_, "' appeared while it was being written; not replacing it");
    const fs::path aside_marker = fs::path(target_) / kAsideMarker;
    if (!fs::exists(aside_marker, ec)) write_marker(aside_marker, "hydra old\n");
    rename_or_throw(target_, aside_);
    fsync_directory(parent_);
    step_done("old moved aside");
  }
  rename_or_throw(temp_, target_);
  committed_ = true;
  registration_.reset();
  // The temp marker came along (removing it before the rename would leave an unmarked, never-removed
  // temp dir if killed in between); the committed directory holds only what the caller wrote.
  const fs::path marker = fs::path(target_) / kTempMarker;
  fs::remove(marker, ec);
  HYDRA_CHECK(!ec, "cannot remove ", marker.string(), ": ", ec.message());
  fsync_directory(parent_);
  step_done("new renamed in");
  if (replacing) {
    remove_marked_or_throw(aside_, kAsideMarker);
    fsync_directory(parent_);
    step_done("old removed");
  }
}

}  // namespace hydra::io
