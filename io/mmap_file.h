// MappedFile: a whole file mapped into memory, owned by a shared_ptr so tensors can view it zero-copy.
//
//   auto file = MappedFile::open(path, "safetensors file");       // shared_ptr<const MappedFile>
//   Tensor w = from_blob(file->writable_data() + off, shape, DType::Float32, file);   // keeps it alive
//
// Two kinds of mapping, both private to this process (MAP_PRIVATE):
//   CopyOnWrite (weights)  PROT_READ | PROT_WRITE: a view handed to code that writes in place (an
//                          optimizer step, copy_into) changes only this process's pages, never the file,
//                          and cannot fault the way a read-only mapping would. NOTE: the kernel counts
//                          such a mapping as memory it may have to provide, so a file larger than RAM +
//                          swap cannot be mapped this way (mmap fails with a message naming the file).
//   ReadOnly (token data)  PROT_READ: costs nothing but address space, for files of any size; writing
//                          through it faults, so only readers get at its bytes (data()).
// Pages are read from the page cache on first touch. Opening goes through io/input_file.h: only a
// regular file is mapped, and a FIFO or a device is an error, never a wait.
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

class InputFile;

enum class MapAccess { CopyOnWrite, ReadOnly };

class MappedFile {
 public:
  // Maps `path` (a regular file; an empty file maps to no memory). Errors name the path and the call,
  // and call it a `kind` ("cannot open safetensors file x: No such file or directory").
  static std::shared_ptr<const MappedFile> open(const std::string& path, const std::string& kind = "file",
                                                MapAccess access = MapAccess::CopyOnWrite);
  // Maps a file already open (so what a caller checked through `in` is what gets mapped).
  static std::shared_ptr<const MappedFile> map(const InputFile& in, MapAccess access = MapAccess::CopyOnWrite);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // The first byte (nullptr for an empty file).
  const char* data() const { return data_; }
  // The same, for tensors that may be written in place; only a CopyOnWrite mapping has it.
  char* writable_data() const;
  uint64_t size() const { return size_; }
  std::string_view bytes() const { return {data_, static_cast<size_t>(size_)}; }
  const std::string& path() const { return path_; }
  MapAccess access() const { return access_; }
  // True when p points inside the mapping (tests use it to prove a tensor is a zero-copy view).
  bool contains(const void* p) const;

 private:
  MappedFile() = default;
  std::string path_;
  char* data_ = nullptr;
  uint64_t size_ = 0;
  MapAccess access_ = MapAccess::CopyOnWrite;
};

}  // namespace hydra::io
