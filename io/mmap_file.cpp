// MappedFile (the contract is in mmap_file.h).
#include "io/mmap_file.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

#include "io/input_file.h"
#include "tensor/error.h"

namespace hydra::io {

std::shared_ptr<const MappedFile> MappedFile::open(const std::string& path, const std::string& kind,
                                                   MapAccess access) {
  return map(InputFile::open(path, kind), access);
}

std::shared_ptr<const MappedFile> MappedFile::map(const InputFile& in, MapAccess access) {
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = in.path();
  file->size_ = in.size();
  file->access_ = access;
  if (file->size_ == 0) return file;  // mmap refuses length 0; an empty file is an empty view
  const int prot = access == MapAccess::CopyOnWrite ? PROT_READ | PROT_WRITE : PROT_READ;
  void* p = ::mmap(nullptr, static_cast<size_t>(file->size_), prot, MAP_PRIVATE, in.fd(), 0);
  // The mapping keeps its own reference to the file: `in` may be closed after this.
  HYDRA_CHECK(p != MAP_FAILED, "cannot map ", in.kind(), " ", in.path(), " (", file->size_,
              " bytes) into memory: ", std::strerror(errno));
  file->data_ = static_cast<char*>(p);
  return file;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(data_, static_cast<size_t>(size_));
}

char* MappedFile::writable_data() const {
  HYDRA_ASSERT(access_ == MapAccess::CopyOnWrite, "writable_data() of the read-only mapping of ", path_);
  return data_;
}

bool MappedFile::contains(const void* p) const {
  const char* c = static_cast<const char*>(p);
  return data_ != nullptr && c >= data_ && c < data_ + size_;
}

}  // namespace hydra::io
