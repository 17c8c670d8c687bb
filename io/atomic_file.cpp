// AtomicFile: temp file in the target's directory, fsync, rename, fsync the directory (POSIX).
#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "tensor/error.h"

namespace hydra::io {

namespace {

std::string errno_text() { return std::strerror(errno); }

std::string parent_directory(const std::string& path) {
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace

void fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  HYDRA_CHECK(fd >= 0, "cannot open directory ", dir, " to sync it: ", errno_text());
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  HYDRA_CHECK(rc == 0, "cannot fsync directory ", dir, ": ", std::strerror(saved));
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  HYDRA_CHECK(!path_.empty(), "cannot write a file with an empty path");
  // The temp file must live in the same directory: rename() is atomic only within one file system.
  static std::atomic<unsigned> counter{0};
  const std::filesystem::path p(path_);
  const std::filesystem::path dir = p.parent_path();
  // NOTE: built with append, not `"." + string`: GCC 12 warns falsely (-Wrestrict) on the latter.
  std::string name = ".";
  name.append(p.filename().string()).append(".tmp-").append(std::to_string(::getpid()));
  name.append("-").append(std::to_string(counter.fetch_add(1)));
  temp_path_ = (dir.empty() ? std::filesystem::path(name) : dir / name).string();
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  HYDRA_CHECK(fd_ >= 0, "cannot write ", path_, ": cannot create temporary file ", temp_path_, ": ",
              errno_text());
}

AtomicFile::~AtomicFile() {
  if (!committed_) discard();
}

void AtomicFile::discard() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
}

void AtomicFile::write(const void* data, size_t nbytes) {
  HYDRA_CHECK(fd_ >= 0 && !committed_, "cannot write ", path_, ": the file is already committed");
  const char* p = static_cast<const char*>(data);
  while (nbytes > 0) {
    const ssize_t n = ::write(fd_, p, nbytes);
    if (n < 0 && errno == EINTR) continue;
    HYDRA_CHECK(n > 0, "cannot write ", path_, " (temporary file ", temp_path_, "): ", errno_text());
    p += n;
    nbytes -= static_cast<size_t>(n);
  }
}

void AtomicFile::commit() {
  HYDRA_CHECK(fd_ >= 0 && !committed_, "cannot commit ", path_, ": the file is already committed");
  HYDRA_CHECK(::fsync(fd_) == 0, "cannot fsync ", temp_path_, ": ", errno_text());
  const int rc = ::close(fd_);
  fd_ = -1;
  HYDRA_CHECK(rc == 0, "cannot close ", temp_path_, ": ", errno_text());
  HYDRA_CHECK(::rename(temp_path_.c_str(), path_.c_str()) == 0, "cannot rename ", temp_path_, " to ", path_,
              ": ", errno_text());
  committed_ = true;
  fsync_directory(parent_directory(path_));
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile out(path);
  out.write(bytes);
  out.commit();
}

}  // namespace hydra::io

namespace hydra::io {

void write_directory_atomic(const std::string& dir, const std::function<void(const std::string& temp_dir)>& fill) {
  namespace fs = std::filesystem;
  const fs::path target(dir);
  std::error_code ec;
  HYDRA_CHECK(!fs::exists(target, ec), "output directory '", dir, "' already exists; choose a new path");
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  HYDRA_CHECK(fs::is_directory(parent, ec), "cannot create '", dir, "': parent directory '", parent.string(),
              "' does not exist");
  const fs::path temp = parent / (".tmp-" + target.filename().string() + "-" + std::to_string(::getpid()));
  fs::remove_all(temp, ec);
  HYDRA_CHECK(fs::create_directory(temp, ec), "cannot create '", temp.string(), "': ", ec.message());
  try {
    fill(temp.string());
    fsync_directory(temp.string());
    std::error_code rename_error;
    fs::rename(temp, target, rename_error);
    HYDRA_CHECK(!rename_error, "cannot rename '", temp.string(), "' to '", dir, "': ", rename_error.message());
    fsync_directory(parent.string());
  } catch (...) {
    fs::remove_all(temp, ec);
    throw;
  }
}

}  // namespace hydra::io
