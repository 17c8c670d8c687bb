// Parameter initialisation, OLMo-core's `InitMethod.normal` (../shared/olmo2-spec.md §1.7):
// every matrix (embeddings, w_q/w_k/w_v/w_out, w1/w2/w3, lm_head.w_out) is trunc_normal(0, std, -3 std,
// +3 std) with std 0.02, norm weights are ones, and nothing is depth-scaled.
//
// The functions write in place into materialized parameters (materialize_parameters, nn/module.h), under
// NoGradGuard, so they work on parameters that require grad. Draw order matters for reproducibility:
// OLMo-core draws embeddings, then per block w_q, w_k, w_v, w_out, w1, w3, w2, then lm_head.w_out.
// NOTE: the values differ from PyTorch's for the same seed (tensor/random.h); fixtures load weights.
#pragma once

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace hydra::nn {

// t = trunc_normal(mean 0, std, a = -3 std, b = +3 std) drawn from gen (which advances by t.numel()).
void init_normal_(Tensor& t, Generator& gen, double std);
// t = 1 everywhere.
void init_ones_(Tensor& t);
// t = 0 everywhere.
void init_zeros_(Tensor& t);
// torch.nn.init.kaiming_uniform_(t, a) with its defaults (mode fan_in, leaky_relu): t (out, in) =
// uniform(−bound, bound), bound = √3 · gain / √in, gain = √(2 / (1 + a²)); drawn from gen. LoRA's A
// uses a = √5, which makes bound = 1/√in (nn/lora.h).
void init_kaiming_uniform_(Tensor& t, Generator& gen, double a);

}  // namespace hydra::nn
