// Thread-count invariance for tests: results must be bit-identical with 1 thread and with 2.
//
//   expect_thread_invariant([&] { ...; return std::vector<Tensor>{out, x.grad()}; }, {"out", "dx"});
//
// runs the function with 1 thread and again with 2 and checks every returned tensor is bit-identical
// (shape, dtype and bytes), naming the one that differs. The thread count in force before the call is
// restored when it returns, also when the function throws.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace hydra::test {

// Sets the thread count for a scope; restores the previous one when the scope ends (also by an exception).
class ScopedThreads {
 public:
  explicit ScopedThreads(int n);
  ~ScopedThreads();
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;

 private:
  int previous_;
};

// True when a and b have the same shape and dtype and the same bytes in row-major order (any layout).
bool bit_identical(const Tensor& a, const Tensor& b);

// See the top of this file. `names` labels the tensors in failure messages (index i when absent).
void expect_thread_invariant(const std::function<std::vector<Tensor>()>& run,
                             const std::vector<std::string>& names = {});

}  // namespace hydra::test
