// InputFile (the contract is in input_file.h).
#include "io/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tensor/error.h"

namespace hydra::io {

namespace {

// What a non-regular file is, for the message.
const char* file_type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

}  // namespace

InputFile InputFile::open(const std::string& path, const std::string& kind) {
  HYDRA_CHECK(!path.empty(), "cannot open ", kind, ": the path is empty");
  int fd = -1;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  HYDRA_CHECK(fd >= 0, "cannot open ", kind, " ", path, ": ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int saved = errno;
    ::close(fd);
    throw Error(detail::concat_message("cannot read ", kind, " ", path, ": ", std::strerror(saved)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(detail::concat_message("cannot read ", kind, " ", path, ": it is ", file_type_name(st.st_mode),
                                       ", not a regular file"));
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    const int saved = errno;
    ::close(fd);
    throw Error(detail::concat_message("cannot read ", kind, " ", path, ": ", std::strerror(saved)));
  }
  return InputFile(path, kind, fd, static_cast<uint64_t>(st.st_size));
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

InputFile::InputFile(InputFile&& other) noexcept
    : path_(std::move(other.path_)), kind_(std::move(other.kind_)), fd_(other.fd_), size_(other.size_) {
  other.fd_ = -1;
}

void InputFile::read_at(void* dst, uint64_t n, uint64_t offset) const {
  HYDRA_ASSERT(offset <= size_ && n <= size_ - offset, "read_at [", offset, ", ", offset + n, ") outside ", path_,
               " (", size_, " bytes)");
  char* p = static_cast<char*>(dst);
  while (n > 0) {
    const ssize_t got = ::pread(fd_, p, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    HYDRA_CHECK(got >= 0, "cannot read ", kind_, " ", path_, ": ", std::strerror(errno));
    HYDRA_CHECK(got > 0, "cannot read ", kind_, " ", path_, ": it ended at byte ", offset, " while being read (",
                size_, " bytes when opened)");
    p += got;
    n -= static_cast<uint64_t>(got);
    offset += static_cast<uint64_t>(got);
  }
}

std::string InputFile::read_prefix(uint64_t n) const {
  std::string bytes(static_cast<size_t>(n < size_ ? n : size_), '\0');
  read_at(bytes.data(), bytes.size(), 0);
  return bytes;
}

std::string InputFile::read_all(uint64_t max_bytes) const {
  HYDRA_CHECK(size_ <= max_bytes, "cannot read ", kind_, " ", path_, ": it is ", size_,
              " bytes, more than the limit of ", max_bytes, " bytes for a ", kind_);
  return read_prefix(size_);
}

std::string read_file(const std::string& path, const std::string& kind, uint64_t max_bytes) {
  return InputFile::open(path, kind).read_all(max_bytes);
}

}  // namespace hydra::io
