// The fused projection + cross-entropy: the blockwise forward (which also forms the gradient), the
// backward right below it, and the reference from the unfused ops (the contract is in
// linear_cross_entropy.h).
#include "nn/linear_cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "autograd/record.h"
#include "nn/linear.h"
#include "tensor/copy.h"
#include "tensor/dispatch.h"
#include "tensor/elementwise.h"
#include "tensor/gemm.h"
#include "tensor/parallel.h"
#include "tensor/row_reduce.h"
#include "tensor/vec_math.h"

namespace hydra::nn {

namespace {

void check_linear_cross_entropy(const Tensor& x, const Tensor& weight, const Tensor& targets) {
  HYDRA_CHECK(is_floating(x.dtype()) && x.dtype() == weight.dtype(), "linear_cross_entropy: x (",
              dtype_name(x.dtype()), ", shape ", shape_str(x.shape()), ") and weight (", dtype_name(weight.dtype()),
              ", shape ", shape_str(weight.shape()), ") must be float32 or float64 of the same dtype");
  HYDRA_CHECK(x.dim() >= 1 && weight.dim() == 2 && x.size(-1) == weight.size(1), "linear_cross_entropy: x of shape ",
              shape_str(x.shape()), " does not match weight of shape ", shape_str(weight.shape()),
              " (expected x (..., C) and weight (V, C))");
  const Shape rows_shape(x.shape().begin(), x.shape().end() - 1);
  HYDRA_CHECK(targets.shape() == rows_shape, "linear_cross_entropy: targets shape ", shape_str(targets.shape()),
              " must equal x's shape ", shape_str(x.shape()), " without its last dim, ", shape_str(rows_shape));
  HYDRA_CHECK(targets.dtype() == DType::Int32 || targets.dtype() == DType::Int64,
              "linear_cross_entropy: targets must be int32 or int64, got ", dtype_name(targets.dtype()));
}

// The gradients the forward formed, already times `scale`; each undefined when not wanted.
struct LinearCrossEntropySaved {
  Tensor dx;  // (..., C), x's shape
  Tensor dw;  // (V, C)
};

template <class T>
Tensor linear_cross_entropy_forward(const Tensor& x_in, const Tensor& w_in, const std::vector<int64_t>& targets,
                                    double scale, int64_t ignore_index, int64_t R, bool want_dx, bool want_dw,
                                    LinearCrossEntropySaved& s) {
  const Tensor x = kernels::contiguous_raw(x_in), w = kernels::contiguous_raw(w_in);
  const int64_t C = w.size(1), V = w.size(0), N = static_cast<int64_t>(targets.size());
  const T* px = x.data<T>();
  const T* pw = w.data<T>();
  const int64_t* t = targets.data();
  R = std::min(R, std::max<int64_t>(N, 1));
  Tensor block = empty({R, V}, x.dtype());  // z_b, then dz_b in place
  T* pz = block.data<T>();
  if (want_dx) s.dx = empty(x.shape(), x.dtype());
  if (want_dw) s.dw = zeros({V, C}, x.dtype());  // N = 0 leaves it 0
  const bool want_grad = want_dx || want_dw;
  const T c = static_cast<T>(scale);

  double total = 0;
  std::vector<double> row_loss(static_cast<size_t>(R));
  for (int64_t r0 = 0; r0 < N; r0 += R) {
    const int64_t rows = std::min(R, N - r0);
    // shape: (rows, C) · (V, C)ᵀ -> (rows, V)
    kernels::gemm<T>(false, true, rows, V, C, T(1), px + r0 * C, C, pw, C, T(0), pz, V);
    parallel_for(0, rows, rows_grain(V), [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        T* z = pz + i * V;
        const int64_t target = t[r0 + i];
        if (target == ignore_index) {  // no loss, no gradient
          row_loss[static_cast<size_t>(i)] = 0;
          if (want_grad) std::fill(z, z + V, T(0));
          continue;
        }
        const T m = row_max(z, V);
        // NOTE: lse in float64, and the softmax's subtraction too, as nn/cross_entropy.cpp explains.
        const double lse = m + std::log(sum_exp_shifted(z, V, m));
        row_loss[static_cast<size_t>(i)] = lse - z[target];
        if (!want_grad) continue;
        const T z_target = z[target];
        for (int64_t k = 0; k < V; ++k) z[k] = vexp(static_cast<T>(z[k] - lse)) * c;
        z[target] = (vexp(static_cast<T>(z_target - lse)) - T(1)) * c;
      }
    });
    // NOTE: added in row order on one thread: the same sum for any thread count.
    for (int64_t i = 0; i < rows; ++i) total += row_loss[static_cast<size_t>(i)];
    if (want_dx)  // shape: (rows, V) · (V, C) -> (rows, C)
      kernels::gemm<T>(false, false, rows, C, V, T(1), pz, V, pw, C, T(0), s.dx.data<T>() + r0 * C, C);
    if (want_dw)  // shape: (rows, V)ᵀ · (rows, C) -> (V, C), added to the blocks before
      kernels::gemm<T>(true, false, V, C, rows, T(1), pz, V, px + r0 * C, C, T(1), s.dw.data<T>(), C);
  }
  Tensor loss = empty({}, x.dtype());
  *loss.data<T>() = static_cast<T>(scale * total);
  return loss;
}

// forward: loss = scale · Σ CE, whose gradients the forward already formed; the upstream gradient g of
// the 0-d loss scales both.
Grads linear_cross_entropy_backward(const LinearCrossEntropySaved& s, const Tensor& dloss, const Needs& needs) {
  const double g = dloss.item<double>();
  Grads grads(3);
  // A loss backpropagated as is (g = 1, the trainer's case) hands its gradients over without a copy: the
  // engine never writes into a gradient it receives (autograd/engine.cpp adds out of place, and clones
  // the first gradient of a leaf).
  if (needs[0]) grads[0] = g == 1.0 ? s.dx : kernels::mul_scalar_raw(s.dx, g);
  if (needs[1]) grads[1] = g == 1.0 ? s.dw : kernels::mul_scalar_raw(s.dw, g);
  return grads;  // targets: no gradient
}

}  // namespace

// About 32 MiB of logits per block: large enough that the (V × C) dW update, read and written once per
// block, costs little next to the block's products; small next to the N × V logits it replaces. And at
// least 512 rows: each block's two products pack the whole weight again (OpenBLAS copies its panels
// before it multiplies), a cost per block against 2·R flops per weight, so with few rows the copying
// dominates. At gpt2's V = 50304, 32 MiB would be 128 rows; measured there (bench_lm_head_loss, forward
// + backward, 1024 rows, 2 threads, two alternated runs): 1.90 / 1.82 s at 128 rows, 1.78 / 1.65 s at
// 256, 1.47 / 1.51 s at 512 (the unfused product with its whole logits: 1.70 / 1.43 / 1.53 / 1.51 s).
int64_t linear_cross_entropy_block_rows(int64_t V, int64_t dtype_bytes) {
  const int64_t rows = (int64_t{32} << 20) / std::max<int64_t>(1, V * dtype_bytes);
  return std::max<int64_t>(512, rows / 64 * 64);
}

Tensor linear_cross_entropy(const Tensor& x, const Tensor& weight, const Tensor& targets, double scale,
                            int64_t ignore_index, int64_t block_rows) {
  check_linear_cross_entropy(x, weight, targets);
  HYDRA_CHECK(std::isfinite(scale), "linear_cross_entropy: scale must be finite, got ", scale);
  HYDRA_CHECK(block_rows >= 0, "linear_cross_entropy: block_rows must be >= 0 (0: automatic), got ", block_rows);
  const int64_t V = weight.size(0);
  const std::vector<int64_t> t = checked_class_targets("linear_cross_entropy", targets, V, ignore_index);
  const bool recorded = any_requires_grad({x, weight});
  const int64_t R = block_rows > 0 ? block_rows : linear_cross_entropy_block_rows(V, static_cast<int64_t>(dtype_size(x.dtype())));
  LinearCrossEntropySaved saved;
  Tensor loss;
  dispatch_float(x.dtype(), "linear_cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    loss = linear_cross_entropy_forward<T>(x, weight, t, scale, ignore_index, R, recorded && x.requires_grad(),
                                           recorded && weight.requires_grad(), saved);
  });
  return record("linear_cross_entropy", loss, {x, weight, targets},
                [saved = std::move(saved)](const Tensor& dloss, const Needs& needs) {
                  return linear_cross_entropy_backward(saved, dloss, needs);
                });
}

Tensor linear_cross_entropy_reference(const Tensor& x, const Tensor& weight, const Tensor& targets, double scale,
                                      int64_t ignore_index) {
  check_linear_cross_entropy(x, weight, targets);
  int64_t count = 0;
  for (int64_t v : targets.to_vector<int64_t>()) count += v != ignore_index;
  if (count == 0) return zeros({}, x.dtype());
  return mul_scalar(cross_entropy(linear(x, weight), targets, ignore_index), scale * static_cast<double>(count));
}

}  // namespace hydra::nn
