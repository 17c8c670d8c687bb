#include "nn/lora.h"

#include <cmath>
#include <set>

#include "autograd/ops.h"
#include "nn/init.h"
#include "tensor/copy.h"

namespace hydra::nn {

namespace {

void check_lora_values(const char* op, int64_t rank, double alpha, double dropout) {
  HYDRA_CHECK(rank >= 1, op, ": rank = ", rank, " must be >= 1");
  HYDRA_CHECK(std::isfinite(alpha) && alpha >= 0, op, ": alpha = ", alpha, " must be finite and >= 0 (0 means 2 * rank)");
  HYDRA_CHECK(dropout >= 0 && dropout < 1, op, ": dropout = ", dropout, " must be in [0, 1)");
}

void check_lora_shapes(const Tensor& weight, const Tensor& lora_A, const Tensor& lora_B) {
  HYDRA_CHECK(weight.dim() == 2 && lora_A.dim() == 2 && lora_B.dim() == 2 && lora_A.size(1) == weight.size(1) &&
                  lora_B.size(0) == weight.size(0) && lora_B.size(1) == lora_A.size(0),
              "lora_linear: weight ", shape_str(weight.shape()), ", lora_A ", shape_str(lora_A.shape()), " and lora_B ",
              shape_str(lora_B.shape()), " do not fit (expected weight [out, in], lora_A [rank, in], lora_B [out, rank])");
}

}  // namespace

void LoraConfig::validate() const {
  check_lora_values("LoraConfig", rank, alpha, dropout);
  HYDRA_CHECK(!targets.empty(), "LoraConfig: targets is empty (name at least one linear, e.g. w1)");
  for (const std::string& t : targets) HYDRA_CHECK(!t.empty(), "LoraConfig: targets holds an empty pattern");
}

LoraAdapter::LoraAdapter(int64_t in_features, int64_t out_features, int64_t rank_, double alpha_, double dropout_)
    : rank(rank_),
      alpha(alpha_ == 0 ? 2.0 * static_cast<double>(rank_) : alpha_),
      scaling(alpha / static_cast<double>(rank_)),
      dropout(dropout_),
      lora_A((check_lora_values("add_lora", rank_, alpha_, dropout_), in_features), rank_),
      lora_B(rank_, out_features) {}

Tensor lora_linear(const Tensor& x, const Tensor& weight, const Tensor& lora_A, const Tensor& lora_B, double scaling,
                   double dropout, Generator* dropout_gen) {
  check_lora_shapes(weight, lora_A, lora_B);
  Tensor base = linear(x, weight);  // shape: (..., out)
  // The adapter sees the dropped-out input; the base product never does.
  Tensor adapter_in = dropout_gen != nullptr && dropout > 0 ? hydra::dropout(x, dropout, *dropout_gen) : x;
  Tensor down = linear(adapter_in, lora_A);  // shape: (..., rank)
  Tensor up = linear(down, lora_B);          // shape: (..., out)
  // As PEFT: result + lora_B(lora_A(dropout(x))) * scaling.
  return add(base, mul_scalar(up, scaling));
}

Tensor lora_linear_reference(const Tensor& x, const Tensor& weight, const Tensor& lora_A, const Tensor& lora_B,
                             double scaling) {
  check_lora_shapes(weight, lora_A, lora_B);
  Tensor up = linear_reference(linear_reference(x, lora_A), lora_B);
  return add(linear_reference(x, weight), mul_scalar(up, scaling));
}

void add_lora(Linear& linear, int64_t rank, double alpha, double dropout) {
  linear.attach_lora(std::make_unique<LoraAdapter>(linear.in_features, linear.out_features, rank, alpha, dropout));
}

void init_lora_(Linear& linear, Generator& gen) {
  HYDRA_CHECK(linear.lora, "init_lora_: the linear has no LoRA adapter");
  // PEFT's reset_lora_parameters: kaiming_uniform_(A, a=√5), zeros_(B).
  init_kaiming_uniform_(linear.lora->lora_A.weight, gen, std::sqrt(5.0));
  init_zeros_(linear.lora->lora_B.weight);
}

void merge_lora(Linear& linear) {
  HYDRA_CHECK(linear.lora, "merge_lora: the linear has no LoRA adapter");
  const LoraAdapter& a = *linear.lora;
  NoGradGuard no_grad;
  // NOTE: B A, the scaling and the sum are formed in float64 and rounded to float32 once, so the merged
  // weight is the float32 nearest to W + scaling·B A (PEFT adds a float32 product: up to rank + 1 roundings).
  Tensor A = cast(a.lora_A.weight, DType::Float64), B = cast(a.lora_B.weight, DType::Float64);
  Tensor delta = mul_scalar(matmul(B, A), a.scaling);  // shape: (out, in)
  kernels::copy_into(linear.weight, add(cast(linear.weight, DType::Float64), delta));
  linear.detach_lora();
}

std::vector<std::pair<std::string, Linear*>> named_linears(Module& root) {
  std::vector<std::pair<std::string, Linear*>> out;
  std::set<const Module*> adapter_parts;  // an adapter's lora_A and lora_B are Linears too, but not targets
  for (auto& [path, m] : root.named_modules()) {
    auto* linear = dynamic_cast<Linear*>(m);
    if (linear == nullptr || adapter_parts.count(m)) continue;
    if (linear->lora) {
      adapter_parts.insert(&linear->lora->lora_A);
      adapter_parts.insert(&linear->lora->lora_B);
    }
    out.push_back({path, linear});
  }
  return out;
}

int64_t set_lora_training(Module& root, Generator* dropout_gen) {
  int64_t n = 0;
  for (auto& [path, linear] : named_linears(root))
    if (linear->lora) {
      linear->lora->dropout_gen = dropout_gen;
      ++n;
    }
  return n;
}

bool draws_dropout_masks(Module& root) {
  for (auto& [path, linear] : named_linears(root))
    if (linear->lora && linear->lora->draws_masks()) return true;
  return false;
}

}  // namespace hydra::nn
