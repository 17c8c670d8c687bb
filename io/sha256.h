// SHA-256 (FIPS 180-4), written out by hand so Hydra needs no crypto library: checkpoint manifests and
// token-file sidecars record the sha256 of every file they depend on.
//
//   sha256_hex("abc")            -> "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
//   Sha256 h; h.update(a); h.update(b); h.hex_digest();   // the same as sha256_hex(a + b)
//   sha256_file_hex(path)        streams the file in 1 MiB reads (constant memory for any size)
//
// On x86-64 CPUs with the SHA extensions the block function uses them (chosen at run time; ~7x faster),
// elsewhere the portable code. Digests are lowercase hex, 64 characters. Errors (a missing or unreadable
// file) throw hydra::Error naming the path. Not here: HMAC, other hash sizes.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace hydra::io {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t nbytes);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  // Finishes the hash (padding and length) and returns the 32-byte digest; the object then starts over.
  std::array<uint8_t, 32> digest();
  std::string hex_digest();

 private:
  void reset();
  void compress(const uint8_t* blocks, size_t count);

  std::array<uint32_t, 8> state_;
  std::array<uint8_t, 64> buffer_;
  size_t buffered_ = 0;       // bytes waiting in buffer_
  uint64_t total_bytes_ = 0;  // message length so far
};

std::string sha256_hex(std::string_view bytes);
std::string sha256_file_hex(const std::string& path);
// The same for a file already open (io/input_file.h): exactly the bytes it had when opened.
class InputFile;
std::string sha256_file_hex(const InputFile& in);

// The x86 SHA extensions are used when the CPU has them (checked once, at run time). For tests: whether
// they exist, and switching them off (and back on) so both code paths can be checked.
bool sha256_hardware_available();
void sha256_use_hardware(bool on);

}  // namespace hydra::io
