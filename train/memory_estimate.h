// How much memory a forward pass and a training step take, from shapes alone (docs/training.md,
// 'Memory').
//
// The estimates follow the code's own accounting, not a rule of thumb: the parameter slab, the gradient
// slab of the trainable parameters (train/trainable.h) and the optimizer's moment slabs
// (train/optimizer.h); then, at the moment memory peaks, every tensor the autograd graph keeps for the
// backward — op by op, what each op's record() saves, walked through one block the way its forward
// runs (an op joins the graph only when an input or parameter needs a gradient) — plus the logits,
// their gradient and the temporaries of the op running at the peak. Every such tensor is rounded to the
// allocator's size class (tensor/allocator.h), as the allocator rounds it: a cached block is touched to
// the end by the larger requests it serves. The slabs are counted at their own size (each parameter
// 64-byte aligned): the allocator's in-use count rounds them up too, but a slab is written once, to its
// size, and the pages past it never become resident.
//
// Forward: HydraTransformer::forward over every head under NoGradGuard (what `hydra forward` runs).
// Training: one micro-batch of Trainer::step (train/trainer.h): the trunk once (with a graph only when a
// trunk parameter trains), then each trained head in turn from a leaf, its backward right after its
// loss, which frees its graph before the next head runs. The peak is the lm_head's backward of the last
// head, unless an odd shape puts it elsewhere (all candidates are compared).
//
// Works on a meta model (no parameter memory), so `hydra info` estimates olmo2-7b on any machine.
// Not counted: the program itself, BLAS and thread buffers, malloc's small blocks, the data files
// (memory-mapped), and the blocks the allocator caches beyond those in use (bench/README.md measures
// what the process holds beyond the estimate).
#pragma once

#include <cstdint>
#include <vector>

#include "hydra/hydra_transformer.h"
#include "train/optimizer.h"

namespace hydra::train {

// Bytes, by what holds them.
struct MemoryEstimate {
  double weights = 0;      // the parameter slab, and the LoRA adapters' own slab
  double gradients = 0;    // the gradient slab: trainable parameters only (twice, with the stash)
  double optimizer = 0;    // AdamW: exp_avg and exp_avg_sq; SGD: the momentum buffer
  double activations = 0;  // at the peak: the graph's saved tensors, logits, gradients in flight, RoPE tables
  double total() const { return weights + gradients + optimizer + activations; }
};

// HydraTransformer::forward of every head without a graph: logits (N, B, T, V).
MemoryEstimate estimate_forward(const HydraTransformerConfig& config, int64_t batch, int64_t seq);

// train::evaluate on one batch of every head: the forward above, then beside the (N, B, T, V) logits
// the ensemble's mean and the product of experts.
MemoryEstimate estimate_evaluation(const HydraTransformerConfig& config, int64_t batch, int64_t seq);

// The shape of a training step as Trainer::step runs it.
struct TrainingShape {
  int64_t batch = 1, seq = 1, grad_accum = 1;  // grad_accum: the micro-batches the step reads
  // Of those, the ones this process computes (0: all of them; fewer under data parallelism, mpirun).
  // More than one costs the gradient stash, a second gradient-sized slab (train/trainable.h).
  int64_t computed_micro_batches = 0;
  int64_t data_groups = 1;     // data streams per micro-batch (shared data: 1; per-head data or shards: more)
  std::vector<int64_t> heads;  // the heads that run: the trained ones
  OptimizerKind optimizer = OptimizerKind::AdamW;
  // The uncertainty objective (train/judge.h): logits at each row's last position only. Not measured by
  // the tests; like SFT, rows are counted at `seq`, the most a padded batch can hold.
  bool judge = false;
};

// One training step of `model` (real or meta), whose parameters' requires_grad and LoRA adapters are
// set as the run sets them (Trainer::setup_trainable). Error if nothing trains or a head is out of range.
MemoryEstimate estimate_training_step(const HydraTransformer& model, const TrainingShape& shape);

}  // namespace hydra::train
