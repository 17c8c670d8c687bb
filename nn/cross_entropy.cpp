// Fused cross-entropy: the forward over rows, the backward right below it, and the reference from
// primitives (the contract is in cross_entropy.h).
#include "nn/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "autograd/record.h"
#include "tensor/copy.h"
#include "tensor/dispatch.h"
#include "tensor/parallel.h"
#include "tensor/row_reduce.h"
#include "tensor/vec_math.h"

namespace hydra::nn {

namespace {

void check_cross_entropy(const char* op, const Tensor& logits, const Tensor& targets) {
  HYDRA_CHECK(is_floating(logits.dtype()), op, ": logits must be float32 or float64, got ",
              dtype_name(logits.dtype()), " (logits shape ", shape_str(logits.shape()), ")");
  HYDRA_CHECK(targets.dtype() == DType::Int32 || targets.dtype() == DType::Int64, op,
              ": targets must be int32 or int64, got ", dtype_name(targets.dtype()), " (targets shape ",
              shape_str(targets.shape()), ")");
  HYDRA_CHECK(logits.dim() >= 1, op, ": logits must have a class dim, (..., V), got shape ",
              shape_str(logits.shape()));
  const Shape rows_shape(logits.shape().begin(), logits.shape().end() - 1);
  HYDRA_CHECK(targets.shape() == rows_shape, op, ": targets shape ", shape_str(targets.shape()),
              " must equal logits shape ", shape_str(logits.shape()), " without its last dim, ",
              shape_str(rows_shape));
}

// What the backward needs: the logits (dense), the targets, one logsumexp per row and the count.
struct CrossEntropySaved {
  Tensor logits;  // (N, V) dense, detached
  std::vector<int64_t> targets;
  std::vector<double> lse;  // (N); 0 for ignored rows
  int64_t count = 0;        // rows whose target is not ignore_index
  int64_t ignore_index = kIgnoreIndex;
};

// loss = Σ_counted (lse[r] - logits[r, t[r]]) / count, with lse[r] = logsumexp(logits[r]).
Tensor cross_entropy_forward(const Tensor& logits_in, const Tensor& targets, int64_t ignore_index,
                             CrossEntropySaved& s) {
  const int64_t V = logits_in.size(-1);
  s.logits = kernels::contiguous_raw(logits_in).detach();
  s.targets = checked_class_targets("cross_entropy", targets, V, ignore_index);
  s.ignore_index = ignore_index;
  const int64_t N = static_cast<int64_t>(s.targets.size());
  const int64_t* t = s.targets.data();
  for (int64_t r = 0; r < N; ++r) s.count += t[r] != ignore_index;
  // NOTE: lse is kept in float64 whatever the logits' dtype. The backward forms exp(logit - lse); with
  // logits near 1e4 a float32 lse is off by up to half an ulp of 1e4 (~5e-4), which would become a
  // 5e-4 relative error in every probability. N doubles are nothing next to the N x V logits.
  s.lse.assign(static_cast<size_t>(N), 0.0);
  std::vector<double> row_loss(static_cast<size_t>(N), 0.0);  // lse - logit[target]; 0 when ignored
  Tensor loss = empty({}, s.logits.dtype());
  dispatch_float(s.logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    const T* px = s.logits.data<T>();
    parallel_for(0, N, rows_grain(V), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        if (t[r] == ignore_index) continue;
        const T* x = px + r * V;  // this row's logits
        const T m = row_max(x, V);
        s.lse[r] = m + std::log(sum_exp_shifted(x, V, m));  // stable: every exp(x - m) <= 1
        row_loss[r] = s.lse[r] - x[t[r]];
      }
    });
    // NOTE: the row losses are added in row order on one thread, so the sum is the same for any
    // thread count. N additions are cheap next to the N x V exponentials above.
    double total = 0;
    for (int64_t r = 0; r < N; ++r) total += row_loss[r];
    // With every row ignored this is 0 / 0 = NaN, as PyTorch.
    *loss.data<T>() = static_cast<T>(total / static_cast<double>(s.count));
  });
  return loss;
}

// forward: loss = Σ_counted (lse - logit[target]) / count and ∂lse/∂logit = softmax,
// so dlogits = (softmax - onehot(target)) * dloss / count per counted row; ignored rows get 0.
Tensor cross_entropy_backward(const CrossEntropySaved& s, const Tensor& dloss) {
  HYDRA_ASSERT(dloss.numel() == 1);
  const int64_t V = s.logits.size(-1), N = static_cast<int64_t>(s.targets.size());
  const int64_t* t = s.targets.data();
  const double scale = s.count > 0 ? dloss.item<double>() / static_cast<double>(s.count) : 0.0;
  Tensor dlogits = empty(s.logits.shape(), s.logits.dtype());
  dispatch_float(s.logits.dtype(), "cross_entropy backward", [&](auto tag) {
    using T = decltype(tag);
    const T* px = s.logits.data<T>();
    T* pdx = dlogits.data<T>();
    const T c = static_cast<T>(scale);
    parallel_for(0, N, rows_grain(V), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const T* x = px + r * V;
        T* dx = pdx + r * V;
        if (t[r] == s.ignore_index) {  // ignored rows take no part in the loss
          std::fill(dx, dx + V, T(0));
          continue;
        }
        // softmax_k = exp(x_k - lse); the subtraction is done in double (see the NOTE on lse above).
        const double lse_r = s.lse[r];
        for (int64_t k = 0; k < V; ++k) dx[k] = vexp(static_cast<T>(x[k] - lse_r)) * c;
        // the onehot term: softmax_t - 1 at the target
        dx[t[r]] = (vexp(static_cast<T>(x[t[r]] - lse_r)) - T(1)) * c;
      }
    });
  });
  return dlogits;
}

}  // namespace

// Checked serially before any work starts, so the error names the first bad target whatever the thread
// count.
std::vector<int64_t> checked_class_targets(const char* op, const Tensor& targets, int64_t V, int64_t ignore_index) {
  std::vector<int64_t> t = targets.to_vector<int64_t>();
  for (size_t r = 0; r < t.size(); ++r) {
    if (t[r] == ignore_index || (t[r] >= 0 && t[r] < V)) continue;
    throw Error(detail::concat_message(op, ": target ", t[r], " at position ",
                                       shape_str(unravel_index(static_cast<int64_t>(r), targets.shape())),
                                       " is out of range for V = ", V, " classes (expected 0 <= target < ", V,
                                       ", or ignore_index ", ignore_index, ")"));
  }
  return t;
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  check_cross_entropy("cross_entropy", logits, targets);
  CrossEntropySaved saved;
  Tensor loss = cross_entropy_forward(logits, targets, ignore_index, saved);  // shape: ()
  return record("cross_entropy", loss, {logits}, [saved = std::move(saved)](const Tensor& dloss, const Needs&) {
    return Grads{cross_entropy_backward(saved, dloss)};
  });
}

Tensor cross_entropy_reference(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  check_cross_entropy("cross_entropy_reference", logits, targets);
  const int64_t V = logits.size(-1);
  const std::vector<int64_t> t = checked_class_targets("cross_entropy_reference", targets, V, ignore_index);
  const int64_t N = static_cast<int64_t>(t.size());
  // The counted rows and their classes (ignored rows take no part).
  std::vector<int64_t> rows, classes;
  for (int64_t r = 0; r < N; ++r)
    if (t[r] != ignore_index) {
      rows.push_back(r);
      classes.push_back(t[r]);
    }
  const int64_t n = static_cast<int64_t>(rows.size());
  // shape: (..., V) -> (N, V) -> (n, V): log-probabilities of the counted rows
  Tensor logp = index_select(log_softmax(reshape(logits, {N, V}), -1), 0, from_vector(rows, {n}));
  // shape: (n, V) -> (n, 1): each row's log-probability of its target
  Tensor picked = gather(logp, 1, from_vector(classes, {n, 1}));
  return neg(mean(picked));  // NaN when n == 0, as the fused op
}

}  // namespace hydra::nn
