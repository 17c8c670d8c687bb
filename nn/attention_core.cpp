// Fused causal attention: the tiled online-softmax forward, the FlashAttention-2 backward right below
// it, and the reference built from primitives.
//
// Notation inside one (batch b, query head h) pair, g = h / (H / Hkv) its kv head:
//   S = scale · Q Kᵀ,  P = softmax_row(S masked causally),  O = P V,  lse_i = log Σ_j e^(S_ij)
// A "tile" is query rows [i0, i0 + nq) × keys [j0, j0 + nk), nq <= kQueryBlock, nk <= kKeyBlock.
#include "nn/attention_core.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "autograd/ops.h"
#include "autograd/record.h"
#include "tensor/copy.h"
#include "tensor/dispatch.h"
#include "tensor/gemm.h"
#include "tensor/row_reduce.h"
#include "tensor/parallel.h"
#include "tensor/vec_math.h"

namespace hydra::nn {

namespace {

// NOTE: block sizes. A score tile is kQueryBlock × kKeyBlock (16 KiB in float32); with the Q, K, V
// (and dO, dQ) blocks it touches, 64 rows × D each, a task's working set stays well inside L2 for
// D <= 128. Measured on this machine (1 thread, CPU time, B·H = 16 or 64, D = 64 and 128, T = 256 and
// 2048): 32 × 32 is 15-30% slower (per-call GEMM overhead and packing dominate); 128 × 128 is even at
// T = 256 and 5-10% faster at T = 2048. 64 × 64 is kept: it wastes less work on the diagonal tiles that
// causal masking half empties, and gives short sequences more forward tasks (T = 256: 4 per head).
// The tiling depends only on the shapes, so results do not depend on the thread count.
constexpr int64_t kQueryBlock = 64;
constexpr int64_t kKeyBlock = 64;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

struct Dims {
  int64_t B, Tq, Tk, H, Hkv, D, group;  // group = H / Hkv query heads per kv head
};

Dims check_attention(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, int64_t q_start,
                     double scale) {
  HYDRA_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op,
              ": expected q (B, Tq, H, D) and k, v (B, Tk, Hkv, D), got q ", shape_str(q.shape()), ", k ",
              shape_str(k.shape()), ", v ", shape_str(v.shape()));
  HYDRA_CHECK(is_floating(q.dtype()) && k.dtype() == q.dtype() && v.dtype() == q.dtype(), op,
              ": expected q, k, v of one float dtype, got ", dtype_name(q.dtype()), ", ", dtype_name(k.dtype()),
              ", ", dtype_name(v.dtype()));
  HYDRA_CHECK(k.shape() == v.shape(), op, ": k ", shape_str(k.shape()), " and v ", shape_str(v.shape()),
              " must have the same shape");
  HYDRA_CHECK(k.size(0) == q.size(0) && k.size(3) == q.size(3) && q.size(3) >= 1, op, ": q ",
              shape_str(q.shape()), " and k ", shape_str(k.shape()),
              " must agree in batch (dim 0) and head_dim (dim 3, >= 1)");
  const int64_t H = q.size(2), Hkv = k.size(2);
  HYDRA_CHECK(Hkv >= 1 && H >= 1 && H % Hkv == 0, op, ": the number of query heads ", H, " (q ",
              shape_str(q.shape()), ") must be a positive multiple of the number of kv heads ", Hkv, " (k ",
              shape_str(k.shape()), ")");
  const int64_t Tq = q.size(1), Tk = k.size(1);
  HYDRA_CHECK(q_start >= 0 && Tk >= q_start + Tq, op, ": queries at positions [", q_start, ", ", q_start + Tq,
              ") need keys [0, ", q_start + Tq, "), but k ", shape_str(k.shape()), " holds ", Tk, " (q_start = ",
              q_start, ")");
  HYDRA_CHECK(std::isfinite(scale), op, ": scale = ", scale, " must be finite");
  return {q.size(0), Tq, Tk, H, Hkv, q.size(3), H / Hkv};
}

// x itself when GEMM can read its rows in place (the last dim dense, consecutive time steps at least
// D apart), else a dense copy. The projections' (B, T, H, D) output and a KV cache narrowed along T
// both qualify.
Tensor gemm_rows(const Tensor& x) {
  const int64_t T = x.size(1), D = x.size(3);
  const bool ok = (x.stride(3) == 1 || D == 1) && (T <= 1 || x.stride(1) >= D);
  return ok ? x : kernels::clone_raw(x);
}

// The rows of a (B, T, H, D) tensor: row(b, h, t) points at its D contiguous values, and the rows of one
// (b, h) are `ld` apart, so a block of them is a GEMM operand with leading dimension ld.
template <class T>
struct HeadRows {
  T* data;
  int64_t batch_stride, head_stride, ld;
  T* row(int64_t b, int64_t h, int64_t t) const { return data + b * batch_stride + h * head_stride + t * ld; }
};

template <class T>
HeadRows<T> head_rows(const Tensor& x) {
  // A single time step has no row stride to speak of; any ld >= D is valid for a one-row operand.
  const int64_t ld = x.size(1) <= 1 ? x.size(3) : x.stride(1);
  return {x.data<std::remove_const_t<T>>(), x.stride(0), x.stride(2), ld};
}

// Keys [j0, j0 + nk) that query row i0 + r (absolute position q_start + i0 + r) may see: the first
// `visible` of them (0 when the whole row of the tile is masked).
int64_t visible_keys(int64_t q_start, int64_t i, int64_t j0, int64_t nk) {
  return std::clamp<int64_t>(q_start + i + 1 - j0, 0, nk);
}

template <class T>
void attention_forward(const Dims& d, int64_t q_start, T scale, HeadRows<const T> q, HeadRows<const T> k,
                       HeadRows<const T> v, HeadRows<T> out, double* lse) {
  const int64_t n_qblocks = ceil_div(d.Tq, kQueryBlock);
  // A block has at most this many query rows: one when decoding, whose scratch is then 64 floats, not
  // 64 × 64 (allocated and zeroed by every task, every layer, every token).
  const int64_t block_rows = std::min(kQueryBlock, d.Tq);
  parallel_for(0, d.B * d.H * n_qblocks, 1, [&](int64_t lo, int64_t hi) {
    std::vector<T> s(block_rows * kKeyBlock), m(block_rows);
    std::vector<double> l(block_rows);
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t qb = task % n_qblocks, h = (task / n_qblocks) % d.H, b = task / (n_qblocks * d.H);
      const int64_t g = h / d.group, i0 = qb * kQueryBlock, nq = std::min(kQueryBlock, d.Tq - i0);
      const T* Q = q.row(b, h, i0);
      T* O = out.row(b, h, i0);  // the accumulator: rows of the output itself
      for (int64_t r = 0; r < nq; ++r) std::fill(O + r * out.ld, O + r * out.ld + d.D, T(0));
      std::fill(m.begin(), m.end(), -std::numeric_limits<T>::infinity());
      std::fill(l.begin(), l.end(), 0.0);
      // Keys [0, key_end) are visible to some row of this block; blocks past it are fully masked.
      const int64_t key_end = q_start + i0 + nq;
      for (int64_t j0 = 0; j0 < key_end; j0 += kKeyBlock) {
        const int64_t nk = std::min(kKeyBlock, key_end - j0);
        // S = scale · Q Kᵀ   (nq × nk)
        kernels::gemm_serial(false, true, nq, nk, d.D, scale, Q, q.ld, k.row(b, g, j0), k.ld, T(0), s.data(),
                             kKeyBlock);
        for (int64_t r = 0; r < nq; ++r) {
          T* sr = s.data() + r * kKeyBlock;
          const int64_t visible = visible_keys(q_start, i0 + r, j0, nk);
          std::fill(sr + visible, sr + nk, T(0));  // masked: probability 0
          if (visible == 0) continue;              // nothing new for this row: m, l, O unchanged
          T row_max = m[r];
          for (int64_t c = 0; c < visible; ++c) row_max = std::max(row_max, sr[c]);
          for (int64_t c = 0; c < visible; ++c) sr[c] = vexp(sr[c] - row_max);
          // Online softmax: what was summed under the old max is rescaled to the new one
          // (alpha = 0 on a row's first block, where m = -inf and O, l are still 0).
          const T alpha = vexp(m[r] - row_max);
          l[r] = l[r] * alpha + row_sum(sr, visible);
          m[r] = row_max;
          if (alpha != T(1))
            for (int64_t e = 0; e < d.D; ++e) O[r * out.ld + e] *= alpha;
        }
        // O += P V   (P is the tile of unnormalised probabilities now in s)
        kernels::gemm_serial(false, false, nq, d.D, nk, T(1), s.data(), kKeyBlock, v.row(b, g, j0), v.ld, T(1), O,
                             out.ld);
      }
      // Every row saw key 0, so l > 0.
      // NOTE: l is summed and lse kept in double whatever T is. The backward forms e^(S - lse); with scores
      // near ±50 a float32 lse is off by up to half an ulp of 50 (2e-6), a relative error that every
      // probability of the row then shares. In double, float32 dk and dv came out 1.5-2x closer to the
      // float64 result (peaky case of tests/test_nn_attention.cpp). B·H·Tq doubles cost nothing.
      double* lse_row = lse + (b * d.H + h) * d.Tq + i0;
      for (int64_t r = 0; r < nq; ++r) {
        const T inv = static_cast<T>(1.0 / l[r]);
        for (int64_t e = 0; e < d.D; ++e) O[r * out.ld + e] *= inv;
        lse_row[r] = static_cast<double>(m[r]) + std::log(l[r]);
      }
    }
  });
}

// What the backward reads (the forward's inputs, its output, the logsumexp and the upstream gradient)
// and writes (dq, dk, dv; data == nullptr for a gradient nobody needs).
template <class T>
struct BackwardArgs {
  HeadRows<const T> q, k, v, out, dout;
  const double* lse;  // (B, H, Tq)
  HeadRows<T> dq, dk, dv;
};

// dQ, dK and dV, FlashAttention-2 style: one task per (b, kv head g), which walks the key blocks and,
// for each, the group's query heads and the query blocks that can see it, all in a fixed order. Each
// tile's P and dS are recomputed once and feed all three gradients; every gradient row belongs to one
// task, so results do not depend on the thread count (no atomics, no shared accumulators).
template <class T>
void attention_backward(const Dims& d, int64_t q_start, T scale, const BackwardArgs<T>& a) {
  const int64_t n_kblocks = ceil_div(d.Tk, kKeyBlock), n_qblocks = ceil_div(d.Tq, kQueryBlock);
  const bool want_q = a.dq.data != nullptr, want_kv = a.dk.data != nullptr;
  parallel_for(0, d.B * d.Hkv, 1, [&](int64_t lo, int64_t hi) {
    std::vector<T> p(kQueryBlock * kKeyBlock), ds(kQueryBlock * kKeyBlock), delta(d.group * d.Tq);
    for (int64_t task = lo; task < hi; ++task) {
      const int64_t g = task % d.Hkv, b = task / d.Hkv, h0 = g * d.group;
      auto zero_rows = [&](const HeadRows<T>& x, int64_t h, int64_t n) {
        for (int64_t t = 0; t < n; ++t) std::fill(x.row(b, h, t), x.row(b, h, t) + d.D, T(0));
      };
      if (want_kv) {
        zero_rows(a.dk, g, d.Tk);
        zero_rows(a.dv, g, d.Tk);
      }
      // Δ_i = Σ_e dO_ie O_ie = Σ_j P_ij dP_ij: the row term of the softmax backward, per query head.
      for (int64_t hh = 0; hh < d.group; ++hh) {
        if (want_q) zero_rows(a.dq, h0 + hh, d.Tq);
        for (int64_t i = 0; i < d.Tq; ++i) {
          const T* dor = a.dout.row(b, h0 + hh, i);
          const T* o = a.out.row(b, h0 + hh, i);
          T sum = 0;
          for (int64_t e = 0; e < d.D; ++e) sum += dor[e] * o[e];
          delta[hh * d.Tq + i] = sum;
        }
      }
      for (int64_t kb = 0; kb < n_kblocks; ++kb) {
        const int64_t j0 = kb * kKeyBlock, nk = std::min(kKeyBlock, d.Tk - j0);
        const T* K = a.k.row(b, g, j0);
        const T* V = a.v.row(b, g, j0);
        // Query i sees key j0 once q_start + i >= j0: earlier query blocks are fully masked here.
        const int64_t first_qb = std::max<int64_t>(0, j0 - q_start) / kQueryBlock;
        for (int64_t hh = 0; hh < d.group; ++hh)
          for (int64_t qb = first_qb; qb < n_qblocks; ++qb) {
            const int64_t h = h0 + hh, i0 = qb * kQueryBlock, nq = std::min(kQueryBlock, d.Tq - i0);
            const T* Q = a.q.row(b, h, i0);
            const T* dO = a.dout.row(b, h, i0);
            // forward: S = scale · Q Kᵀ (recomputed, not saved)
            kernels::gemm_serial(false, true, nq, nk, d.D, scale, Q, a.q.ld, K, a.k.ld, T(0), p.data(), kKeyBlock);
            // forward: O = P V, so dP = dO Vᵀ
            kernels::gemm_serial(false, true, nq, nk, d.D, T(1), dO, a.dout.ld, V, a.v.ld, T(0), ds.data(),
                                 kKeyBlock);
            const double* lse = a.lse + (b * d.H + h) * d.Tq + i0;
            const T* dlt = delta.data() + hh * d.Tq + i0;
            for (int64_t r = 0; r < nq; ++r) {
              T* pr = p.data() + r * kKeyBlock;
              T* dsr = ds.data() + r * kKeyBlock;
              const int64_t visible = visible_keys(q_start, i0 + r, j0, nk);
              // forward: P = e^(S - lse), the softmax of the visible scores
              const double lse_r = lse[r];
              for (int64_t c = 0; c < visible; ++c) pr[c] = vexp(static_cast<T>(pr[c] - lse_r));
              // forward: P = softmax(S), so dS = P ∘ (dP - Σ_j P dP) = P ∘ (dP - Δ)
              for (int64_t c = 0; c < visible; ++c) dsr[c] = pr[c] * (dsr[c] - dlt[r]);
              std::fill(pr + visible, pr + nk, T(0));  // masked: P = 0, so dS = 0
              std::fill(dsr + visible, dsr + nk, T(0));
            }
            if (want_kv) {
              // forward: O = P V, so dV += Pᵀ dO
              kernels::gemm_serial(true, false, nk, d.D, nq, T(1), p.data(), kKeyBlock, dO, a.dout.ld, T(1),
                                   a.dv.row(b, g, j0), a.dv.ld);
              // forward: S = scale · Q Kᵀ, so dK += scale · dSᵀ Q
              kernels::gemm_serial(true, false, nk, d.D, nq, scale, ds.data(), kKeyBlock, Q, a.q.ld, T(1),
                                   a.dk.row(b, g, j0), a.dk.ld);
            }
            if (want_q)  // and dQ += scale · dS K
              kernels::gemm_serial(false, false, nq, d.D, nk, scale, ds.data(), kKeyBlock, K, a.k.ld, T(1),
                                   a.dq.row(b, h, i0), a.dq.ld);
          }
      }
    }
  });
}

// What the backward reads: the forward's inputs (as GEMM reads them), its output and the logsumexp.
struct AttentionSaved {
  Dims d;
  int64_t q_start = 0;
  double scale = 1;
  Tensor q, k, v, out;  // detached
  Tensor lse;           // (B, H, Tq) float64
};

// The backward of causal_attention on tensors: dq, dk and dv for the inputs that need them.
Grads attention_backward(const AttentionSaved& s, const Tensor& dout_in, const Needs& needs) {
  Grads grads(3);
  if (s.out.numel() == 0) {  // nothing flowed: every gradient is zero
    for (int i = 0; i < 3; ++i)
      if (needs[i]) grads[i] = zeros((i == 0 ? s.q : s.k).shape(), s.q.dtype());
    return grads;
  }
  Tensor dout = gemm_rows(dout_in);
  Tensor dq = needs[0] ? empty(s.q.shape(), s.q.dtype()) : Tensor();
  Tensor dk = needs[1] || needs[2] ? empty(s.k.shape(), s.k.dtype()) : Tensor();
  Tensor dv = needs[1] || needs[2] ? empty(s.v.shape(), s.v.dtype()) : Tensor();
  dispatch_float(s.q.dtype(), "causal_attention backward", [&](auto tag) {
    using T = decltype(tag);
    auto rows_or_null = [](const Tensor& t) { return t.defined() ? head_rows<T>(t) : HeadRows<T>{nullptr, 0, 0, 0}; };
    BackwardArgs<T> args{head_rows<const T>(s.q),   head_rows<const T>(s.k), head_rows<const T>(s.v),
                         head_rows<const T>(s.out), head_rows<const T>(dout), s.lse.data<double>(),
                         rows_or_null(dq),          rows_or_null(dk),         rows_or_null(dv)};
    attention_backward<T>(s.d, s.q_start, static_cast<T>(s.scale), args);
  });
  grads[0] = dq;
  if (needs[1]) grads[1] = dk;
  if (needs[2]) grads[2] = dv;
  return grads;
}

}  // namespace

Tensor causal_attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, int64_t q_start, double scale) {
  AttentionSaved s;
  s.d = check_attention("causal_attention", q_in, k_in, v_in, q_start, scale);
  s.q_start = q_start;
  s.scale = scale;
  s.q = gemm_rows(q_in).detach();
  s.k = gemm_rows(k_in).detach();
  s.v = gemm_rows(v_in).detach();
  Tensor out = empty({s.d.B, s.d.Tq, s.d.H, s.d.D}, s.q.dtype());
  s.out = out.detach();
  s.lse = empty({s.d.B, s.d.H, s.d.Tq}, DType::Float64);
  if (out.numel() > 0)
    dispatch_float(s.q.dtype(), "causal_attention", [&](auto tag) {
      using T = decltype(tag);
      attention_forward<T>(s.d, q_start, static_cast<T>(scale), head_rows<const T>(s.q), head_rows<const T>(s.k),
                           head_rows<const T>(s.v), head_rows<T>(out), s.lse.data<double>());
    });
  return record("causal_attention", out, {q_in, k_in, v_in},
                [s](const Tensor& dout, const Needs& needs) { return attention_backward(s, dout, needs); });
}

Tensor causal_attention_reference(const Tensor& q, const Tensor& k, const Tensor& v, int64_t q_start,
                                  double scale) {
  const Dims d = check_attention("causal_attention_reference", q, k, v, q_start, scale);
  // shape: (B, Tq, H, D) -> (B, H, Tq, D)
  Tensor qh = permute(q, {0, 2, 1, 3});
  // Each kv head serves `group` consecutive query heads: repeat it to line up with them.
  auto per_query_head = [&](const Tensor& t) {
    // shape: (B, Tk, Hkv, D) -> (B, Hkv, Tk, D) -> (B, Hkv, 1, Tk, D) -> (B, Hkv, group, Tk, D) -> (B, H, Tk, D)
    Tensor th = unsqueeze(permute(t, {0, 2, 1, 3}), 2);
    return reshape(expand(th, {d.B, d.Hkv, d.group, d.Tk, d.D}), {d.B, d.H, d.Tk, d.D});
  };
  Tensor kh = per_query_head(k), vh = per_query_head(v);
  // shape: (B, H, Tq, D) @ (B, H, D, Tk) -> (B, H, Tq, Tk)
  Tensor scores = mul_scalar(matmul(qh, transpose(kh, 2, 3)), scale);
  // Query i (position q_start + i) may not see key j > q_start + i: add -inf there.
  std::vector<double> mask(d.Tq * d.Tk, 0.0);
  for (int64_t i = 0; i < d.Tq; ++i)
    for (int64_t j = q_start + i + 1; j < d.Tk; ++j) mask[i * d.Tk + j] = -std::numeric_limits<double>::infinity();
  // shape: (Tq, Tk) -> (B, H, Tq, Tk)
  Tensor mask_t = broadcast_to(cast(from_vector<double>(mask, {d.Tq, d.Tk}), q.dtype()), scores.shape());
  Tensor probs = softmax(add(scores, mask_t), -1);
  // shape: (B, H, Tq, Tk) @ (B, H, Tk, D) -> (B, H, Tq, D) -> (B, Tq, H, D)
  return contiguous(permute(matmul(probs, vh), {0, 2, 1, 3}));
}

}  // namespace hydra::nn
