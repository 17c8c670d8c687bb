// AtomicFile: temp file in the target's directory, fsync, rename, fsync the directory (POSIX).
#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "io/temp_files.h"
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
  struct stat st {};
  HYDRA_CHECK(::stat(path_.c_str(), &st) != 0 || S_ISREG(st.st_mode), "cannot write ", path_,
              ": it exists and is not a regular file");
  // The temp file must live in the same directory: rename() is atomic only within one file system.
  temp_path_ = temp_path_for(path_);
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  HYDRA_CHECK(fd_ >= 0, "cannot write ", path_, ": cannot create temporary file ", temp_path_, ": ",
              errno_text());
  registration_ = std::make_unique<TempRegistration>(temp_path_, /*is_directory=*/false);
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

void AtomicFile::prepare() {
  HYDRA_CHECK(fd_ >= 0 && !committed_, "cannot commit ", path_, ": the file is already committed");
  HYDRA_CHECK(::fsync(fd_) == 0, "cannot write ", path_, ": cannot fsync ", temp_path_, ": ", errno_text());
  const int rc = ::close(fd_);
  fd_ = -1;
  HYDRA_CHECK(rc == 0, "cannot write ", path_, ": cannot close ", temp_path_, ": ", errno_text());
}

void AtomicFile::publish() {
  HYDRA_CHECK(fd_ < 0 && !committed_, "cannot publish ", path_, " before prepare()");
  HYDRA_CHECK(::rename(temp_path_.c_str(), path_.c_str()) == 0, "cannot rename ", temp_path_, " to ", path_,
              ": ", errno_text());
  committed_ = true;
  registration_.reset();
}

void AtomicFile::commit() {
  prepare();
  publish();
  fsync_directory(parent_directory(path_));
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile out(path);
  out.write(bytes);
  out.commit();
}

void commit_together(const std::vector<AtomicFile*>& files) {
  for (AtomicFile* f : files) f->prepare();
  signal_point("outputs written");
  {
    const SignalsDeferred deferred;
    for (size_t i = 0; i < files.size(); ++i) {
      files[i]->publish();
      if (i == 0) signal_point("first output renamed");
    }
  }
  for (AtomicFile* f : files) fsync_directory(parent_directory(f->path()));
}

namespace {

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {}, sb {};
  if (::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0)
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  std::error_code ea, eb;
  const std::filesystem::path pa = std::filesystem::weakly_canonical(std::filesystem::absolute(a), ea);
  const std::filesystem::path pb = std::filesystem::weakly_canonical(std::filesystem::absolute(b), eb);
  return !ea && !eb && pa == pb;
}

}  // namespace

void check_distinct_outputs(const std::vector<NamedPath>& outputs, const std::vector<NamedPath>& inputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    for (size_t j = i + 1; j < outputs.size(); ++j)
      HYDRA_CHECK(!same_file(outputs[i].second, outputs[j].second), outputs[i].first, " and ", outputs[j].first,
                  " name the same file (", outputs[i].second, "); give each output its own path");
    for (const auto& [what, path] : inputs)
      HYDRA_CHECK(!same_file(outputs[i].second, path), outputs[i].first, " (", outputs[i].second,
                  ") is also an input (", what, "); write the output somewhere else");
  }
}

}  // namespace hydra::io
