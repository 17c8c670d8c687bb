// MappedFile (the contract is in mmap_file.h).
#include "io/mmap_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "tensor/error.h"

namespace hydra::io {

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path, const std::string& kind) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  HYDRA_CHECK(fd >= 0, "cannot open ", kind, " ", path, ": ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(detail::concat_message("cannot read ", kind, " ", path, ": not a regular file"));
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = static_cast<uint64_t>(st.st_size);
  if (file->size_ > 0) {
    void* p = ::mmap(nullptr, static_cast<size_t>(file->size_), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    const int mmap_errno = errno;
    ::close(fd);  // the mapping keeps its own reference to the file
    HYDRA_CHECK(p != MAP_FAILED, "cannot map ", kind, " ", path, " into memory: ", std::strerror(mmap_errno));
    file->data_ = static_cast<char*>(p);
  } else {
    ::close(fd);
  }
  return file;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, static_cast<size_t>(size_));
}

bool MappedFile::contains(const void* p) const {
  const char* c = static_cast<const char*>(p);
  return data_ != nullptr && c >= data_ && c < data_ + size_;
}

}  // namespace hydra::io
