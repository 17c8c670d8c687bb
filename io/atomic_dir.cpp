// DirectoryWriter: temp dir, fsync, rename aside, rename in, remove the old one (see atomic_dir.h).
#include "io/atomic_dir.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>

#include "io/atomic_file.h"
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
  return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH);
}

struct Names {
  std::string target, parent, name, aside, temp_prefix;
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
  n.aside = (fs::path(n.parent) / std::string(".").append(n.name).append(".old")).string();
  n.temp_prefix = std::string(".").append(n.name).append(".tmp-");
  return n;
}

void rename_or_throw(const std::string& from, const std::string& to) {
  HYDRA_CHECK(::rename(from.c_str(), to.c_str()) == 0, "cannot rename ", from, " to ", to, ": ",
              std::strerror(errno));
}

void remove_all_or_throw(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  HYDRA_CHECK(!ec, "cannot remove ", path, ": ", ec.message());
}

// Temp dirs ".<name>.tmp-<pid>-<n>" whose writer process no longer exists.
void remove_dead_temps(const Names& n) {
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(n.parent, ec)) {
    const std::string file = entry.path().filename().string();
    if (file.compare(0, n.temp_prefix.size(), n.temp_prefix) != 0) continue;
    const long pid = std::strtol(file.c_str() + n.temp_prefix.size(), nullptr, 10);
    if (!temp_is_active(file, pid)) remove_all_or_throw(entry.path().string());
  }
  HYDRA_CHECK(!ec, "cannot list ", n.parent, ": ", ec.message());
}

}  // namespace

void set_directory_commit_hook(std::function<void(const std::string& step)> hook) { commit_hook() = std::move(hook); }

std::string committed_directory(const std::string& target) {
  const Names n = names_of(target);
  std::error_code ec;
  if (!fs::exists(n.target, ec) && fs::is_directory(n.aside, ec)) return n.aside;
  return target;
}

void recover_directory(const std::string& target) {
  const Names n = names_of(target);
  std::error_code ec;
  const bool have_target = fs::exists(n.target, ec);
  if (fs::exists(n.aside, ec)) {
    // Killed between "old moved aside" and "new renamed in": the old version is the latest complete one.
    if (!have_target) rename_or_throw(n.aside, n.target);
    // Killed after "new renamed in": the old version is garbage (possibly half removed).
    else remove_all_or_throw(n.aside);
    fsync_directory(n.parent);
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
  static std::atomic<unsigned> counter{0};
  temp_name_ = n.temp_prefix + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  temp_ = (fs::path(parent_) / temp_name_).string();
  HYDRA_CHECK(fs::create_directory(temp_, ec) && !ec, "cannot create the temporary directory ", temp_, ": ",
              ec ? ec.message() : std::string("it already exists"));
  std::lock_guard<std::mutex> lock(active_mutex);
  active_temps.insert(temp_name_);
  replace_ = replace;
}

DirectoryWriter::~DirectoryWriter() {
  {
    std::lock_guard<std::mutex> lock(active_mutex);
    active_temps.erase(temp_name_);
  }
  if (committed_) return;
  std::error_code ignored;
  fs::remove_all(temp_, ignored);
}

std::string DirectoryWriter::file(const std::string& name) const { return (fs::path(temp_) / name).string(); }

void DirectoryWriter::commit() {
  HYDRA_CHECK(!committed_, "the directory ", target_, " is already committed");
  fsync_directory(temp_);
  step_done("temp synced");
  std::error_code ec;
  const bool replacing = fs::exists(target_, ec);
  if (replacing) {
    HYDRA_CHECK(replace_, "output directory '", target_, "' appeared while it was being written; not replacing it");
    rename_or_throw(target_, aside_);
    fsync_directory(parent_);
    step_done("old moved aside");
  }
  rename_or_throw(temp_, target_);
  committed_ = true;
  fsync_directory(parent_);
  step_done("new renamed in");
  if (replacing) {
    remove_all_or_throw(aside_);
    fsync_directory(parent_);
    step_done("old removed");
  }
}

}  // namespace hydra::io
