#include "nn/linear.h"

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "nn/lora.h"
#include "tensor/copy.h"
#include "tensor/gemm.h"
#include "tensor/gemm_bf16.h"
#include "tensor/gemm_small.h"

namespace hydra::nn {

namespace {

void check_linear_shapes(const Tensor& x, const Tensor& weight) {
  HYDRA_CHECK(weight.dim() == 2 && x.dim() >= 1 && x.size(-1) == weight.size(1), "linear: input ",
              shape_str(x.shape()), " and weight ", shape_str(weight.shape()),
              " do not match (the weight must be [out, in] with in = the input's last dim)");
}

void check_linear(const Tensor& x, const Tensor& weight) {
  check_linear_shapes(x, weight);
  HYDRA_CHECK(x.dtype() == weight.dtype(), "linear: input ", shape_str(x.shape()), " is ", dtype_name(x.dtype()),
              " but weight ", shape_str(weight.shape()), " is ", dtype_name(weight.dtype()));
}

// N = the product of x's leading dims: the number of rows the GEMM sees.
int64_t leading_rows(const Tensor& x) {
  int64_t n = 1;
  for (int64_t d = 0; d + 1 < x.dim(); ++d) n *= x.size(d);
  return n;
}

// A bfloat16 weight (inference only): float32 x times the bf16 weight (tensor/gemm_bf16.h), float32 out.
// No graph is recorded, so a caller that wants gradients is refused rather than silently given none.
Tensor linear_bf16(const Tensor& x, const Tensor& weight) {
  HYDRA_CHECK(x.dtype() == DType::Float32, "linear: input ", shape_str(x.shape()), " is ", dtype_name(x.dtype()),
              "; a bfloat16 weight ", shape_str(weight.shape()), " takes float32 inputs");
  HYDRA_CHECK(!grad_mode_enabled() || !x.requires_grad(), "linear: weight ", shape_str(weight.shape()),
              " is bfloat16, which is for inference only (no gradient flows through it); train with float32 "
              "weights");
  HYDRA_CHECK(weight.is_contiguous(), "linear: the bfloat16 weight ", shape_str(weight.shape()), " must be dense");
  const int64_t in = weight.size(1), out = weight.size(0), n = leading_rows(x);
  const Tensor dense = kernels::contiguous_raw(x);  // shape: (..., in), read as (N, in)
  Shape out_shape = x.shape();
  out_shape.back() = out;
  Tensor y = empty(out_shape);  // shape: (..., out)
  kernels::gemm_bf16(n, out, in, dense.data<float>(), in, weight.data<bfloat16>(), in, y.data<float>(), out);
  return y;
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight) {
  check_linear_shapes(x, weight);
  if (weight.dtype() == DType::BFloat16) return linear_bf16(x, weight);
  check_linear(x, weight);
  const int64_t in = weight.size(1), out = weight.size(0);
  // A 2-D x goes in as it is, so a transposed view reaches GEMM as a flag; other ranks flatten their
  // leading dims (a view when x is dense).
  Tensor rows = x.dim() == 2 ? x : reshape(x, {leading_rows(x), in});  // shape: (N, in)
  // matmul's backward gives dx = dy (Wᵀ)ᵀ = dy W and d(Wᵀ) = xᵀ dy, which transpose's backward turns
  // into dW = dyᵀ x: the sum over all N rows the contract asks for.
  Tensor y = matmul(rows, transpose(weight, 0, 1));  // shape: (N, out)
  if (x.dim() == 2) return y;
  Shape out_shape = x.shape();
  out_shape.back() = out;
  return view(y, out_shape);  // shape: (..., out)
}

Tensor linear_reference(const Tensor& x, const Tensor& weight) {
  check_linear(x, weight);
  const int64_t n = leading_rows(x), in = weight.size(1), out = weight.size(0);
  Tensor xr = unsqueeze(reshape(x, {n, in}), 1);             // shape: (N, 1, in)
  Tensor wr = unsqueeze(weight, 0);                          // shape: (1, out, in)
  Tensor prod = mul(broadcast_to(xr, {n, out, in}), broadcast_to(wr, {n, out, in}));
  Shape out_shape = x.shape();
  out_shape.back() = out;
  return reshape(sum(prod, {2}), out_shape);                 // shape: (..., out)
}

Linear::Linear(int64_t in_features_, int64_t out_features_) : in_features(in_features_), out_features(out_features_) {
  HYDRA_CHECK(in_features >= 1 && out_features >= 1, "Linear: in_features = ", in_features,
              " and out_features = ", out_features, " must both be >= 1");
  register_parameter("weight", weight, {out_features, in_features});
}

Linear::~Linear() = default;

Tensor Linear::forward(const Tensor& x) const {
  if (!lora) return linear(x, weight);
  return lora_linear(x, weight, lora->lora_A.weight, lora->lora_B.weight, lora->scaling, lora->dropout,
                     lora->dropout_gen);
}

void Linear::attach_lora(std::unique_ptr<LoraAdapter> adapter) {
  HYDRA_CHECK(!lora, "Linear: it already has a LoRA adapter");
  HYDRA_CHECK(adapter->lora_A.in_features == in_features && adapter->lora_B.out_features == out_features,
              "Linear: a LoRA adapter for [", adapter->lora_B.out_features, ", ", adapter->lora_A.in_features,
              "] does not fit a weight of [", out_features, ", ", in_features, "]");
  lora = std::move(adapter);
  register_module("lora_A", lora->lora_A);
  register_module("lora_B", lora->lora_B);
}

std::unique_ptr<LoraAdapter> Linear::detach_lora() {
  HYDRA_CHECK(lora, "Linear: it has no LoRA adapter to remove");
  unregister_module("lora_A");
  unregister_module("lora_B");
  return std::move(lora);
}

namespace {

// Whether forward_shared_input may run the layers' products as one region (see linear.h).
bool can_share_input(std::initializer_list<const Linear*> layers, const Tensor& x) {
  // A strided x goes through linear() as it is (a transposed one as BLAS's transpose flag), so only a
  // dense one is sure of the few-row kernel's bits.
  if (grad_mode_enabled() || x.dtype() != DType::Float32 || x.dim() < 1 || !x.is_contiguous()) return false;
  if (leading_rows(x) > kernels::kSmallGemmRows) return false;
  const DType dtype = (*layers.begin())->weight.dtype();
  if (dtype != DType::Float32 && dtype != DType::BFloat16) return false;
  for (const Linear* layer : layers) {
    if (layer->lora || layer->weight.dtype() != dtype || !layer->weight.is_contiguous()) return false;
    check_linear_shapes(x, layer->weight);
  }
  return true;
}

}  // namespace

std::vector<Tensor> forward_shared_input(std::initializer_list<const Linear*> layers, const Tensor& x) {
  std::vector<Tensor> out;
  if (layers.size() < 2 || !can_share_input(layers, x)) {
    for (const Linear* layer : layers) out.push_back(layer->forward(x));
    return out;
  }
  const int64_t n = leading_rows(x), in = x.size(-1);
  std::vector<kernels::SharedInputProduct<float>> products;
  std::vector<kernels::Bf16Product> bf16_products;
  for (const Linear* layer : layers) {
    Shape out_shape = x.shape();
    out_shape.back() = layer->out_features;
    out.push_back(empty(out_shape));  // shape: (..., out)
    float* c = out.back().data<float>();
    if (layer->weight.dtype() == DType::BFloat16)
      bf16_products.push_back({layer->weight.data<bfloat16>(), in, layer->out_features, c, layer->out_features});
    else
      products.push_back({layer->weight.data<float>(), in, layer->out_features, c, layer->out_features});
  }
  if (!bf16_products.empty())
    kernels::gemm_bf16_shared_input(n, in, x.data<float>(), in, bf16_products);
  else
    kernels::gemm_shared_input<float>(n, in, x.data<float>(), in, products);
  return out;
}

}  // namespace hydra::nn
