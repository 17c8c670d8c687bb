// Linear: y = x Wᵀ with W stored [out, in] as PyTorch and OLMo-core do. No bias (OLMo-2 has none).
//
// Shapes: x (..., in), weight (out, in) -> y (..., out). Every leading dim is a row: the product is one
// GEMM over N = numel(x) / in rows, with the weight handed to BLAS as a transpose flag, never copied.
// Backward (through autograd matmul): dx = dy W, dW = dyᵀ x summed over all N rows.
//
// linear_reference is the same map built from broadcasting, mul and sum (no matmul), for the tests.
//
// A Linear may carry a LoRA adapter (nn/lora.h); forward then adds it.
//
// The weight may also be bfloat16 (nn::convert_matrices_to_bfloat16, for inference): x stays float32,
// the product is tensor/gemm_bf16.h's, and no gradient is recorded (asking for one is an error).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <vector>

#include "nn/module.h"

namespace hydra::nn {

// x (..., in) float, weight (out, in) of x's dtype -> (..., out). Errors name "linear" and both shapes.
Tensor linear(const Tensor& x, const Tensor& weight);
// The same result as Σ_in x[..., 1, in] * weight[out, in], materialising (N, out, in): tests only.
Tensor linear_reference(const Tensor& x, const Tensor& weight);

class LoraAdapter;  // nn/lora.h

class Linear : public Module {
 public:
  // weight: [out_features, in_features], registered as "weight" (a meta tensor until materialized).
  Linear(int64_t in_features, int64_t out_features);
  ~Linear() override;

  // x (..., in_features) -> (..., out_features); with an adapter, lora_linear (nn/lora.h).
  Tensor forward(const Tensor& x) const;

  // Installs `adapter`, registering its lora_A and lora_B as children, or removes and returns it.
  // Use nn::add_lora / nn::merge_lora (nn/lora.h), which call these.
  void attach_lora(std::unique_ptr<LoraAdapter> adapter);
  std::unique_ptr<LoraAdapter> detach_lora();

  int64_t in_features, out_features;
  Tensor weight;
  std::unique_ptr<LoraAdapter> lora;  // null without an adapter
};

// layers[i]->forward(x) for every i, with the same bits. While decoding (no gradient recorded, x of at
// most a few rows, no adapters, weights all float32 or all bfloat16) their products share one parallel
// region: one start and one wait instead of one per layer (kernels::gemm_shared_input says why).
std::vector<Tensor> forward_shared_input(std::initializer_list<const Linear*> layers, const Tensor& x);

}  // namespace hydra::nn
