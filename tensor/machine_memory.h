// How much memory this process can have, so that a size read from a file (a config's layer count, a
// .npy shape, a tokenizer's text) is refused with a message before it is allocated, instead of ending in
// std::bad_alloc or the kernel's OOM killer.
//
// machine_memory_bytes() is the least of: physical RAM (sysconf), the cgroup limit (v2 memory.max, v1
// memory.limit_in_bytes) and the address-space and data-segment rlimits; HYDRA_MEMORY_LIMIT_MB, when
// set, lowers it further (tests use it to play a small machine). Read once per process.
// Not here: how much is free right now (that changes every moment); a request that fits the machine but
// not what is left still meets the OS's own limits.
#pragma once

#include <cstdint>
#include <string>

namespace hydra {

uint64_t machine_memory_bytes();

// "1.50 GiB" (binary units, two decimals; plain bytes below 1 KiB).
std::string human_bytes(double bytes);

// Error (hydra::Error) unless `bytes` fit in machine_memory_bytes():
// "<what> needs 9.16 GiB (9160000000 bytes), more than this machine's memory (8.00 GiB)".
void check_fits_in_memory(uint64_t bytes, const std::string& what);

}  // namespace hydra
