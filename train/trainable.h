// The trainable parameters of a model, with their gradients in one slab.
//
// Every parameter with requires_grad gets a gradient buffer, and only those: a frozen trunk costs no
// gradient memory. The gradients live in one float32 slab (the parameters already live in one, see
// nn/module.h), each 64-byte aligned, in named_parameters() order; each parameter's .grad is bound to
// its view of the slab, so the autograd engine accumulates into it in place. The optimizer's moments
// use slabs of the same layout (new_slab), so one fused pass over fixed chunks updates everything.
//
// The chunking depends only on the parameters' shapes, and sums over chunks are added in chunk order,
// so the gradient norm (and everything else here) is bit-identical for any thread count.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "nn/module.h"
#include "tensor/tensor.h"

namespace hydra::train {

struct TrainableParameter {
  std::string name;
  Tensor param;          // the model's parameter (a view into the model's slab)
  Tensor grad;           // its gradient: a view into the gradient slab, bound as param's .grad
  int64_t slab_offset;   // where this parameter starts in the gradient slab (and every moment slab)
  bool weight_decay;     // decayed by the optimizer: 2-D weight matrices, never embeddings or norms
};

// Weight decay applies to 2-D weight matrices (linear layers, the lm_head's output, LoRA matrices) and
// never to embeddings or norm weights (1-D).
bool decays(const std::string& name, const Tensor& param);

// The head a parameter belongs to: k for "heads.k.<...>", -1 for any other name.
int64_t head_of_parameter(const std::string& name);

class TrainableParameters {
 public:
  // Collects every parameter of `model` that requires grad. Error if there is none.
  explicit TrainableParameters(nn::Module& model);

  const std::vector<TrainableParameter>& list() const { return params_; }
  int64_t numel() const { return numel_; }        // trainable elements
  int64_t slab_numel() const { return slab_numel_; }  // with alignment padding

  // Zeroes the gradient slab (and re-binds each .grad to it, in case something dropped the binding).
  void zero_grad();
  // The global L2 norm of every gradient (accumulated in double, in a fixed order).
  double grad_norm() const;
  // Multiplies every gradient by c.
  void scale_grad(float c);
  // The first parameter (in list order) whose gradient holds a NaN or an infinity; "" if none.
  std::string first_non_finite_grad() const;
  // The whole gradient slab (padding included: zeros), for reductions across processes.
  std::span<float> grad_slab() { return {grad_slab_.data<float>(), static_cast<size_t>(slab_numel_)}; }
  // The elements [begin, end) of the slab that parameter i occupies (with its padding).
  std::pair<int64_t, int64_t> slab_range(size_t i) const;

  // Gradient accumulation one micro-batch at a time: stash_grad() adds the slab into a second slab (the
  // stash, zeroed by zero_grad) and zeroes the slab; restore_stash() copies the stash back. Every
  // micro-batch's gradient is thus computed alone and the step's gradient is ((0 + g_0) + g_1) + ...:
  // the same sum, in the same order, as P processes each computing one micro-batch and adding their
  // gradients in rank order (train/distributed.h).
  void stash_grad();
  void restore_stash();
  // For the last micro-batch, range by range instead of stash_grad + restore_stash: the slab's elements
  // [begin, end) become stash + slab (the same bits as the pair: the same one addition per element).
  void fold_stash(int64_t begin, int64_t end);

  // Each chunk's sum of squared gradients (double), and the norm they make, added in chunk order.
  std::vector<double> chunk_square_sums() const;
  static double norm_of(const std::vector<double>& chunk_square_sums);

  // Restricts the fused passes (for_each_chunk: the optimizer, scale_grad) to the parameters marked
  // true; by default all. A process that trains only some heads updates only those.
  void set_active(const std::vector<bool>& active);

  // A fused pass visits the parameters as chunks of at most kChunk elements: (index into list(), the
  // element range [begin, end) inside that parameter).
  struct Chunk {
    int32_t param;
    int64_t begin, end;
  };
  static constexpr int64_t kChunk = 1 << 15;
  const std::vector<Chunk>& chunks() const { return chunks_; }
  // Calls f(chunk) for every chunk, in parallel; f must write only its own chunk's elements.
  template <class F>
  void for_each_chunk(F&& f) const;

  // A zeroed float32 slab with the gradient slab's layout (optimizer moments live in these), and the
  // view of parameter i in such a slab.
  Tensor new_slab() const;
  Tensor view_in(const Tensor& slab, size_t i) const;

 private:
  std::vector<TrainableParameter> params_;
  std::vector<Chunk> chunks_;
  std::vector<Chunk> active_chunks_;
  Tensor grad_slab_, stash_;
  int64_t numel_ = 0, slab_numel_ = 0;
};

}  // namespace hydra::train

#include "tensor/parallel.h"

template <class F>
void hydra::train::TrainableParameters::for_each_chunk(F&& f) const {
  parallel_for(0, static_cast<int64_t>(active_chunks_.size()), 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) f(active_chunks_[c]);
  });
}
