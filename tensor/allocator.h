// Where tensor memory comes from: a caching allocator for large blocks.
//
// Training allocates the same large buffers (activations, gradients, logits) every step. Returning
// them to the OS and asking again costs a page fault per 4 KiB on first touch — for a 16 MB GEMM
// output that is more time than the GEMM's packing. So blocks of at least kCacheMinBytes are kept on
// free lists by size class after their last tensor dies, and handed out again; smaller blocks go
// straight to malloc, which already caches them. Reuse never changes values (memory is uninitialised
// either way), so determinism is unaffected.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hydra {

constexpr size_t kCacheMinBytes = 64 * 1024;

// 64-byte aligned memory of at least `nbytes`; never returns null. A size beyond this machine's memory
// (tensor/machine_memory.h), or one the OS refuses, is a hydra::Error saying how much was asked for.
void* allocate_bytes(size_t nbytes);
// Gives a block back (to the cache when large enough and the cache is under its limit).
void free_bytes(void* ptr, size_t nbytes);
// The bytes allocate_bytes(nbytes) really takes: its size class (8 per power of two from kCacheMinBytes
// on, whole 64-byte lines below). Memory estimates (train/memory_estimate.h) round every tensor with it.
size_t allocation_bytes(size_t nbytes);

// Only blocks of at least kCacheMinBytes are counted: smaller ones go to malloc untracked.
struct AllocatorStats {
  size_t cached_bytes = 0;       // held on free lists now
  size_t in_use_bytes = 0;       // handed out and not yet freed
  size_t peak_in_use_bytes = 0;  // the most in use at once since start or reset_peak_in_use()
  size_t peak_held_bytes = 0;    // the most in use + cached at once (what the process holds for tensors)
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;
};
AllocatorStats allocator_stats();
// Starts new peaks from now: peak_in_use_bytes = in_use_bytes, peak_held_bytes = in use + cached (to
// measure one phase of a program).
void reset_peak_in_use();
// Returns every cached block to the OS.
void release_cached_memory();
// The most the cache may hold (default 4 GiB, or HYDRA_CACHE_LIMIT_MB).
void set_cache_limit_bytes(size_t bytes);

}  // namespace hydra
