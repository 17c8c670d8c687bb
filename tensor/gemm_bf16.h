// The product of float32 activations and bfloat16 weights: C = A Wᵀ, what nn::linear computes when its
// weight is stored in bfloat16 (tensor/bfloat16.h). Inference only: no gradient.
//
// Each element c_in is computed on its own, in an order fixed by K alone:
//   - the row a_i is rounded to bfloat16 (round to nearest even, bfloat16.h), then both a_i and w_n are
//     read as pairs (k = 2p, 2p + 1), zero-padded up to a multiple of 32;
//   - pair p goes to lane p % 64 of 64 float32 sums, each pair adding first its odd then its even product
//     (the product of two bfloat16 values is exact in float32, so each addition rounds once), with
//     bfloat16 inputs below the normal range read as zero and sums that are tiny after rounding (below
//     2^-126 when rounded with an unbounded exponent, x86's flush-to-zero rule) flushed to zero;
//   - the 64 sums are added pairwise (32, 16, 8, 4, 2, 1).
// Each 16 lanes are exactly what the AVX-512 instruction vdpbf16ps does in one register (four registers
// make four independent chains of it), so two paths give the same bits: `avx512_bf16` (the
// instruction, on CPUs that have it: Zen 4, Sapphire Rapids) and `portable` (the same arithmetic
// written as plain float code, for every other x86-64 CPU). Row i's bits do not
// depend on how many rows there are, nor on the thread count (tiles split columns and rows only).
//
// The path is chosen once per process: avx512_bf16 when the CPU has it, unless the environment sets
// HYDRA_SIMD=portable (tests run both on one machine); HYDRA_SIMD=auto or unset picks the best.
#pragma once

#include <cstdint>
#include <span>

#include "tensor/bfloat16.h"

namespace hydra::kernels {

enum class Bf16Path { Portable, Avx512Bf16 };

// Whether this CPU has the AVX-512 bf16 instructions (cpuid).
bool cpu_has_avx512_bf16();
// The path gemm_bf16 uses in this process (see the top of this file). A HYDRA_SIMD value other than
// portable or auto is an error naming it.
Bf16Path bf16_path();
// "avx512_bf16" or "portable".
const char* bf16_path_name(Bf16Path path);

// C (M×N, row stride ldc) = A (M×K float32, row stride lda) · Wᵀ, W (N×K bfloat16, row stride ldw).
// Runs in parallel (deterministically) on the path bf16_path() chose.
void gemm_bf16(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const bfloat16* W, int64_t ldw,
               float* C, int64_t ldc);
// One product of a group that shares its float32 left operand: C (M×N, row stride ldc) = A · Wᵀ, with W
// (N×K bfloat16, row stride ldw).
struct Bf16Product {
  const bfloat16* W;
  int64_t ldw, N;
  float* C;
  int64_t ldc;
};
// Every product of `products` with the one A (M×K, row stride lda): A is rounded to bfloat16 once and all
// their tiles run as one parallel region (decoding's q/k/v projections, or w1 and w3; tensor/gemm.h's
// gemm_shared_input says why). Each product gets the bits gemm_bf16 gives it alone.
void gemm_bf16_shared_input(int64_t M, int64_t K, const float* A, int64_t lda, std::span<const Bf16Product> products);
// The same on a given path (tests compare the two). Asking for Avx512Bf16 on a CPU without it is an error.
void gemm_bf16_on(Bf16Path path, int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const bfloat16* W,
                  int64_t ldw, float* C, int64_t ldc);

}  // namespace hydra::kernels
