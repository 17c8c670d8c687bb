// The caching allocator: large blocks are reused by size class, small ones are not cached, the cache
// respects its limit, and release gives everything back.
#include <doctest/doctest.h>

#include "tensor/allocator.h"
#include "tensor/machine_memory.h"
#include "tensor/tensor.h"

using namespace hydra;

TEST_CASE("a freed large block is handed out again for the same size") {
  release_cached_memory();
  void* first = nullptr;
  {
    Tensor t = empty({1 << 20});  // 4 MiB
    first = t.raw_data();
  }
  AllocatorStats before = allocator_stats();
  CHECK(before.cached_bytes >= (size_t{4} << 20));
  Tensor again = empty({1 << 20});
  CHECK(again.raw_data() == first);
  AllocatorStats after = allocator_stats();
  CHECK(after.cache_hits == before.cache_hits + 1);
  CHECK(after.cached_bytes == before.cached_bytes - (size_t{4} << 20));
  // A slightly smaller request falls in the same size class and reuses the block too.
  void* p = again.raw_data();
  again = Tensor();
  Tensor smaller = empty({(1 << 20) - 1000});
  CHECK(smaller.raw_data() == p);
}

TEST_CASE("small blocks bypass the cache; the limit and release are honoured") {
  release_cached_memory();
  size_t cached = allocator_stats().cached_bytes;
  { Tensor t = empty({100}); }
  CHECK(allocator_stats().cached_bytes == cached);

  set_cache_limit_bytes(size_t{8} << 20);
  {
    std::vector<Tensor> ts;
    for (int i = 0; i < 6; ++i) ts.push_back(empty({1 << 20}));  // 6 × 4 MiB freed at once
  }
  CHECK(allocator_stats().cached_bytes <= (size_t{8} << 20));
  release_cached_memory();
  CHECK(allocator_stats().cached_bytes == 0);
  set_cache_limit_bytes(size_t{4} << 30);
}

TEST_CASE("in-use accounting returns to its starting point") {
  size_t in_use = allocator_stats().in_use_bytes;
  {
    Tensor a = empty({3 << 20}), b = zeros({5, 70000}, DType::Float64);
    CHECK(allocator_stats().in_use_bytes > in_use);
  }
  CHECK(allocator_stats().in_use_bytes == in_use);
}

TEST_CASE("a tensor larger than this machine's memory is a hydra::Error saying how much, not std::bad_alloc") {
  const AllocatorStats before = allocator_stats();
  CHECK_THROWS_WITH_AS(empty({int64_t{1} << 46}),  // 256 TiB of float32
                       doctest::Contains("a tensor needs 256.00 TiB (281474976710656 bytes), more than this machine's memory"),
                       Error);
  CHECK(allocator_stats().in_use_bytes == before.in_use_bytes);
  CHECK(machine_memory_bytes() > (uint64_t{64} << 20));
  CHECK(human_bytes(1536.0 * 1024 * 1024) == "1.50 GiB");
  CHECK(human_bytes(512) == "512 B");
}

TEST_CASE("allocation_bytes is the size class a request really takes") {
  CHECK(allocation_bytes(0) == 64);
  CHECK(allocation_bytes(100) == 128);                            // small: whole 64-byte lines
  CHECK(allocation_bytes(kCacheMinBytes) == kCacheMinBytes);       // a power of two is its own class
  CHECK(allocation_bytes(kCacheMinBytes + 1) == kCacheMinBytes + kCacheMinBytes / 8);
  CHECK(allocation_bytes((size_t{3} << 20) + 1) == (size_t{3} << 20) + (size_t{1} << 18));  // 8 classes per power of two
  // The in-use count moves by exactly that.
  const size_t before = allocator_stats().in_use_bytes;
  Tensor t = empty({(1 << 18) + 3});  // 1 MiB + 12 bytes
  CHECK(allocator_stats().in_use_bytes - before == allocation_bytes(((1 << 18) + 3) * 4));
}

TEST_CASE("reset_peak_in_use starts a new peak from what is in use now") {
  {
    Tensor big = empty({1 << 22});  // 16 MiB, freed at once
  }
  CHECK(allocator_stats().peak_in_use_bytes >= allocator_stats().in_use_bytes + (size_t{16} << 20));
  reset_peak_in_use();
  const size_t base = allocator_stats().in_use_bytes;
  CHECK(allocator_stats().peak_in_use_bytes == base);
  {
    Tensor a = empty({1 << 18});  // 1 MiB
    Tensor b = empty({1 << 19});  // 2 MiB
  }
  Tensor c = empty({1 << 18});
  CHECK(allocator_stats().peak_in_use_bytes == base + (size_t{3} << 20));
}
