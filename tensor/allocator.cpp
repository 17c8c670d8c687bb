#include "tensor/allocator.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

#include "tensor/error.h"
#include "tensor/machine_memory.h"

namespace hydra {

namespace {

// Size classes: 8 per power of two (at most 12.5% rounding waste), so a block freed by one step fits
// the same request in the next.
size_t size_class(size_t nbytes) {
  if (nbytes < kCacheMinBytes) return ((nbytes + 63) / 64) * 64;
  size_t top = size_t{1} << (63 - __builtin_clzll(nbytes));  // largest power of two <= nbytes
  size_t step = top / 8;
  return (nbytes + step - 1) / step * step;
}

size_t default_limit() {
  if (const char* env = std::getenv("HYDRA_CACHE_LIMIT_MB")) {
    char* end = nullptr;
    unsigned long long mb = std::strtoull(env, &end, 10);
    if (end != env && *end == '\0') return static_cast<size_t>(mb) << 20;
  }
  return size_t{4} << 30;
}

struct Cache {
  std::mutex mutex;
  std::map<size_t, std::vector<void*>> free_lists;  // size class -> blocks
  size_t limit = default_limit();
  AllocatorStats stats;

  // Frees cached blocks, largest first, until at most `target` bytes remain. Caller holds the mutex.
  void shrink_to(size_t target) {
    for (auto it = free_lists.rbegin(); it != free_lists.rend() && stats.cached_bytes > target; ++it) {
      while (!it->second.empty() && stats.cached_bytes > target) {
        std::free(it->second.back());
        it->second.pop_back();
        stats.cached_bytes -= it->first;
      }
    }
  }
};

// Leaked on purpose: tensors in static objects may be freed after a function-local static would
// have been destroyed.
Cache& cache() {
  static Cache* c = new Cache();
  return *c;
}

}  // namespace

size_t allocation_bytes(size_t nbytes) { return size_class(nbytes == 0 ? 1 : nbytes); }

void* allocate_bytes(size_t nbytes) {
  // A size no machine here can provide (from a hostile file, usually) is a message, not an OOM kill.
  check_fits_in_memory(nbytes, "a tensor");
  const size_t cls = allocation_bytes(nbytes);
  if (cls >= kCacheMinBytes) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    c.stats.in_use_bytes += cls;
    c.stats.peak_in_use_bytes = std::max(c.stats.peak_in_use_bytes, c.stats.in_use_bytes);
    auto it = c.free_lists.find(cls);
    if (it != c.free_lists.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      c.stats.cached_bytes -= cls;
      ++c.stats.cache_hits;
      return p;
    }
    ++c.stats.cache_misses;
    c.stats.peak_held_bytes = std::max(c.stats.peak_held_bytes, c.stats.in_use_bytes + c.stats.cached_bytes);
  }
  void* p = std::aligned_alloc(64, cls);
  if (p == nullptr) {
    // Out of memory with blocks sitting in the cache: give them back and try once more.
    release_cached_memory();
    p = std::aligned_alloc(64, cls);
    if (p == nullptr) {
      if (cls >= kCacheMinBytes) {
        std::lock_guard<std::mutex> lock(cache().mutex);
        cache().stats.in_use_bytes -= cls;
      }
      throw Error(detail::concat_message("out of memory: cannot allocate ", human_bytes(static_cast<double>(cls)),
                                         " for a tensor (this machine has ",
                                         human_bytes(static_cast<double>(machine_memory_bytes())), ")"));
    }
  }
  return p;
}

void free_bytes(void* ptr, size_t nbytes) {
  if (ptr == nullptr) return;
  const size_t cls = allocation_bytes(nbytes);
  if (cls < kCacheMinBytes) {
    std::free(ptr);
    return;
  }
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.stats.in_use_bytes -= cls;
  if (cls > c.limit) {
    std::free(ptr);
    return;
  }
  c.free_lists[cls].push_back(ptr);
  c.stats.cached_bytes += cls;
  if (c.stats.cached_bytes > c.limit) c.shrink_to(c.limit);
}

AllocatorStats allocator_stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return c.stats;
}

void reset_peak_in_use() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.stats.peak_in_use_bytes = c.stats.in_use_bytes;
  c.stats.peak_held_bytes = c.stats.in_use_bytes + c.stats.cached_bytes;
}

void release_cached_memory() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.shrink_to(0);
}

void set_cache_limit_bytes(size_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  c.limit = bytes;
  c.shrink_to(bytes);
}

}  // namespace hydra
