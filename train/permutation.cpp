#include "train/permutation.h"

#include "tensor/error.h"

namespace hydra::train {

uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

RandomPermutation::RandomPermutation(uint64_t n, uint64_t seed) : n_(n) {
  HYDRA_CHECK(n >= 1, "RandomPermutation: n must be >= 1");
  int bits = 2;  // an even number of bits with 2^bits >= n, so the two halves are equal
  while (bits < 64 && (uint64_t{1} << bits) < n) bits += 2;
  half_bits_ = bits / 2;
  uint64_t k = mix64(seed ^ 0x5EEDF00Dull);
  for (uint64_t& key : keys_) key = k = mix64(k);
}

uint64_t RandomPermutation::feistel(uint64_t x) const {
  const uint64_t mask = (uint64_t{1} << half_bits_) - 1;
  uint64_t left = x >> half_bits_, right = x & mask;
  for (uint64_t key : keys_) {
    const uint64_t next = left ^ (mix64(right ^ key) & mask);
    left = right;
    right = next;
  }
  return (left << half_bits_) | right;
}

uint64_t RandomPermutation::operator()(uint64_t i) const {
  HYDRA_ASSERT(i < n_, "permutation index ", i, " out of range ", n_);
  // The domain is at most 4n, so on average fewer than 4 rounds of walking.
  uint64_t x = feistel(i);
  while (x >= n_) x = feistel(x);
  return x;
}

}  // namespace hydra::train
