// MappedFile: a whole file mapped into memory, owned by a shared_ptr so tensors can view it zero-copy.
//
//   auto file = MappedFile::open(path);            // shared_ptr<const MappedFile>
//   Tensor w = from_blob(file->data() + off, shape, DType::Float32, file);   // the view keeps it alive
//
// The mapping is private and copy-on-write (PROT_READ | PROT_WRITE, MAP_PRIVATE): a view handed to code
// that writes in place (an optimizer step, copy_into) changes only this process's pages, never the file,
// and cannot fault the way a read-only mapping would. Pages are read from the page cache on first touch.
//
// Not handled (documented limits of mmap): a file truncated by another process while mapped makes reads
// past its new end raise SIGBUS. Hydra writes its files atomically (a rename), which never truncates a
// mapped file in place.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace hydra::io {

class MappedFile {
 public:
  // Maps `path` (a regular file; an empty file maps to no memory). Errors name the path and the call,
  // and call it a `kind` ("cannot open safetensors file x: No such file or directory").
  static std::shared_ptr<const MappedFile> open(const std::string& path, const std::string& kind = "file");
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // The first byte (nullptr for an empty file). Writable because the mapping is copy-on-write.
  char* data() const { return data_; }
  uint64_t size() const { return size_; }
  std::string_view bytes() const { return {data_, static_cast<size_t>(size_)}; }
  const std::string& path() const { return path_; }
  // True when p points inside the mapping (tests use it to prove a tensor is a zero-copy view).
  bool contains(const void* p) const;

 private:
  MappedFile() = default;
  std::string path_;
  char* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace hydra::io
