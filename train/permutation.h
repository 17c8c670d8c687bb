// A seeded random permutation of [0, n) that is computed, not stored.
//
// Shuffling the windows of a 100 GB token file would take a permutation of ~10^8 indices (800 MB) per
// epoch. Instead, index i maps to perm(i) through a keyed bijection: a balanced Feistel network on the
// smallest even number of bits covering n, with "cycle walking" (apply it again while the result is
// >= n, which stays inside [0, n) because the network is a bijection of the larger domain). The map is a
// pure function of (n, seed, i): any thread can compute any position, and a resumed run needs only
// the seed and its cursor.
#pragma once

#include <cstdint>

namespace hydra::train {

class RandomPermutation {
 public:
  // A permutation of [0, n), n >= 1, determined by `seed`.
  RandomPermutation(uint64_t n, uint64_t seed);
  uint64_t size() const { return n_; }
  // The element at position i (i < n).
  uint64_t operator()(uint64_t i) const;

 private:
  uint64_t feistel(uint64_t x) const;

  uint64_t n_;
  int half_bits_;
  uint64_t keys_[6];
};

// splitmix64: a fast, well-mixing hash of one 64-bit value (used to derive keys and seeds).
uint64_t mix64(uint64_t x);

}  // namespace hydra::train
