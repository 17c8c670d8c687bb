#include "support/threads.h"

#include <doctest/doctest.h>

#include <cstring>

#include "tensor/copy.h"
#include "tensor/parallel.h"

namespace hydra::test {

ScopedThreads::ScopedThreads(int n) : previous_(num_threads()) { set_num_threads(n); }
ScopedThreads::~ScopedThreads() { set_num_threads(previous_); }

bool bit_identical(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor da = kernels::contiguous_raw(a), db = kernels::contiguous_raw(b);
  return std::memcmp(da.raw_data(), db.raw_data(), static_cast<size_t>(da.numel()) * dtype_size(da.dtype())) == 0;
}

void expect_thread_invariant(const std::function<std::vector<Tensor>()>& run, const std::vector<std::string>& names) {
  std::vector<Tensor> one, two;
  {
    ScopedThreads threads(1);
    one = run();
  }
  {
    ScopedThreads threads(2);
    two = run();
  }
  REQUIRE(one.size() == two.size());
  for (size_t i = 0; i < one.size(); ++i) {
    INFO("tensor ", i < names.size() ? names[i] : std::to_string(i), " with 1 and 2 threads");
    CHECK(bit_identical(one[i], two[i]));
  }
}

}  // namespace hydra::test
