// The vocabulary projection fused with the cross-entropy, one block of rows at a time, so that the
// (N, V) logits and their gradient never exist whole:
//
//   loss = scale · Σ over counted rows r of ( logsumexp(z[r]) - z[r, targets[r]] ),   z = x Wᵀ
//
// Training a language model spends most of its memory beyond the weights on these two N × V matrices:
// on the `small` preset (V = 16384) at batch 8 × 256 tokens they are 134 MB each, per head. Here the
// forward walks the rows in blocks of R; for each block it forms z_b = x_b Wᵀ (R × V) in one reused
// buffer, takes each row's logsumexp and loss, and — when a gradient will be wanted — turns the buffer
// into the block's dz = scale · (softmax - onehot) in place and uses it at once:
//
//   dx_b  = dz_b W        (R × C)   written into dx
//   dW   += dz_bᵀ x_b     (V × C)   the blocks added in row order
//
// The backward then only multiplies the saved dx and dW by the upstream gradient (a scalar). Memory:
// one R × V block, dx (N × C) and dW (V × C) instead of 2 × N × V. The gradient's GEMMs run in the
// forward, so call it only where a backward follows; without a graph (no grad mode, or neither x nor
// W requiring a gradient) it computes the loss alone, still blockwise.
//
// Shapes: x (..., C) float32/float64; weight (V, C) of x's dtype; targets x's shape without its last dim,
// int32/int64, each in [0, V) or ignore_index. Returns a 0-d tensor of x's dtype. Ignored rows take no
// part; with every row ignored the loss is 0 (a sum, unlike cross_entropy's mean).
//
// Determinism: the blocks run in row order and each product is tiled by its shape only (tensor/gemm.h),
// so the result is bit-identical for any thread count. It is not bit-identical to the unfused
// linear + cross_entropy: dW is summed over blocks of R rows instead of in one product.
#pragma once

#include <cstdint>

#include "nn/cross_entropy.h"
#include "tensor/tensor.h"

namespace hydra::nn {

// block_rows: rows per block (0: about 32 MiB of logits per block, at least 512 rows; tests pass small
// values to cross block boundaries). Errors (hydra::Error naming "linear_cross_entropy") print the shapes.
Tensor linear_cross_entropy(const Tensor& x, const Tensor& weight, const Tensor& targets, double scale,
                            int64_t ignore_index = kIgnoreIndex, int64_t block_rows = 0);

// The rows per block when block_rows is 0: about 32 MiB of logits, a multiple of 64, at least 512 (the
// memory estimates, train/memory_estimate.h, count one such block).
int64_t linear_cross_entropy_block_rows(int64_t V, int64_t dtype_bytes);

// The same loss from the unfused ops: scale · count · cross_entropy(linear(x, weight), targets). Tests.
Tensor linear_cross_entropy_reference(const Tensor& x, const Tensor& weight, const Tensor& targets, double scale,
                                      int64_t ignore_index = kIgnoreIndex);

}  // namespace hydra::nn
