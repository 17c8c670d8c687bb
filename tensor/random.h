// A seeded random generator whose output never depends on the thread count.
//
// It is counter-based: element i of a draw is a hash of (seed, offset + i), so elements can be
// computed in any order on any thread and the result is the same. The whole state is two integers
// (seed, offset), which makes saving it in a checkpoint trivial. Each draw advances the offset by the
// number of elements drawn.
//
// NOTE: the values differ from PyTorch's generator; tests that compare with PyTorch load weights from
// fixtures rather than re-drawing them.
#pragma once

#include <cstdint>

#include "tensor/tensor.h"

namespace hydra {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0);

  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  void set_state(uint64_t seed, uint64_t offset);

  // Uniform in [low, high).
  Tensor uniform(const Shape& shape, double low = 0.0, double high = 1.0, DType dtype = DType::Float32);
  // Normal with the given mean and standard deviation.
  Tensor normal(const Shape& shape, double mean = 0.0, double std = 1.0, DType dtype = DType::Float32);
  // Normal(mean, std) restricted to [a, b] (absolute bounds, as torch.nn.init.trunc_normal_), by
  // rejection: each element redraws until it lands inside.
  Tensor trunc_normal(const Shape& shape, double mean, double std, double a, double b,
                      DType dtype = DType::Float32);
  // Integers uniform in [low, high).
  Tensor randint(const Shape& shape, int64_t low, int64_t high, DType dtype = DType::Int64);

  // 64 random bits for element `index` of the current draw; `lane` picks independent streams per element.
  // Inline: kernels call it once per element (dropout), and inlined it vectorises.
  uint64_t bits(uint64_t index, uint64_t lane) const {
    return mix64(key_ ^ mix64(offset_ + index) ^ (lane * 0xD1B54A32D192ED03ULL));
  }


 private:
  // SplitMix64's finaliser: a bijective mix whose output bits each depend on every input bit.
  static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  uint64_t seed_ = 0;
  uint64_t key_ = 0;     // the seed, scrambled
  uint64_t offset_ = 0;  // counters consumed so far
};

}  // namespace hydra
