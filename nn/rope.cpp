// RoPE: the float32 tables, the fused rotation kernel with its backward right below the forward, and
// the reference built from primitives.
#include "nn/rope.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "autograd/record.h"
#include "tensor/copy.h"
#include "tensor/dispatch.h"
#include "tensor/parallel.h"

namespace hydra::nn {

namespace {

// Positions are added to the cache in chunks of at least this many, so decoding one token at a time
// does not rebuild the tables every step.
constexpr int64_t kMinCachedPositions = 256;

void check_rope_input(const char* op, const Tensor& x, int64_t start_pos, const RotaryEmbedding& rope) {
  HYDRA_CHECK(x.dim() == 4 && x.size(3) == rope.head_dim(), op, ": expected x of shape (B, T, H, D) with D = ",
              rope.head_dim(), ", got ", shape_str(x.shape()));
  HYDRA_CHECK(is_floating(x.dtype()), op, ": expected a float32 or float64 tensor, got ", dtype_name(x.dtype()),
              " of shape ", shape_str(x.shape()));
  HYDRA_CHECK(start_pos >= 0, op, ": start_pos = ", start_pos, " must be >= 0");
}

// out = R x with R the rotation by +angle (sign = +1) or -angle (sign = -1), for each (B, T, H) row of x.
// cos/sin: (T, D) float32. Returns a new dense tensor of x's shape and dtype.
Tensor rope_rotate(const Tensor& x_in, const Tensor& cos, const Tensor& sin, double sign) {
  Tensor x = kernels::contiguous_raw(x_in);
  Tensor out = empty(x.shape(), x.dtype());
  if (out.numel() == 0) return out;
  const int64_t T = x.size(1), H = x.size(2), D = x.size(3), half = D / 2;
  const int64_t rows = x.size(0) * T * H;
  const float* pc = cos.data<float>();
  const float* ps = sin.data<float>();
  dispatch_float(x.dtype(), "apply_rope", [&](auto tag) {
    using Real = decltype(tag);
    const Real* px = x.data<Real>();
    Real* po = out.data<Real>();
    parallel_for(0, rows, rows_grain(D), [&](int64_t lo, int64_t hi) {
      for (int64_t r = lo; r < hi; ++r) {
        const int64_t t = (r / H) % T;  // row r is (b, t, h) in row-major order
        const float* c = pc + t * D;
        const float* s = ps + t * D;
        const Real* xr = px + r * D;
        Real* yr = po + r * D;
        // NOTE: the two halves of each table are equal (emb = cat(freqs, freqs)), so the same formula
        // with -sin is the inverse rotation, and it matches x·cos + rotate_half(x)·sin term by term.
        for (int64_t d = 0; d < half; ++d) {
          const Real x1 = xr[d], x2 = xr[d + half];
          const Real s1 = static_cast<Real>(sign * s[d]), s2 = static_cast<Real>(sign * s[d + half]);
          yr[d] = x1 * static_cast<Real>(c[d]) + (-x2) * s1;
          yr[d + half] = x2 * static_cast<Real>(c[d + half]) + x1 * s2;
        }
      }
    });
  });
  return out;
}

}  // namespace

RotaryEmbedding::RotaryEmbedding(int64_t head_dim, double theta) : head_dim_(head_dim), theta_(theta) {
  HYDRA_CHECK(head_dim >= 2 && head_dim % 2 == 0, "RotaryEmbedding: head_dim = ", head_dim,
              " must be even and >= 2 (RoPE rotates pairs)");
  HYDRA_CHECK(theta > 0, "RotaryEmbedding: theta = ", theta, " must be > 0");
  // NOTE: fp32 throughout, as OLMo-core: inv_freq = 1 / θ ** (arange(0, D, 2, float) / D).
  inv_freq_.resize(head_dim / 2);
  const float theta_f = static_cast<float>(theta);
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq_[i] = 1.0f / std::pow(theta_f, exponent);
  }
}

RotaryEmbedding::Tables RotaryEmbedding::tables(int64_t start, int64_t length) const {
  HYDRA_ASSERT(start >= 0 && length >= 0);
  const int64_t D = head_dim_, half = D / 2, end = start + length;
  std::lock_guard<std::mutex> lock(mutex_);
  const int64_t cached = cos_.defined() ? cos_.size(0) : 0;
  if (end > cached) {
    // Rebuild into new tensors (views handed out earlier keep the old ones alive and unchanged).
    const int64_t n = std::max({end, 2 * cached, kMinCachedPositions});
    Tensor c = empty({n, D}, DType::Float32), s = empty({n, D}, DType::Float32);
    float* pc = c.data<float>();
    float* ps = s.data<float>();
    for (int64_t p = 0; p < n; ++p)
      for (int64_t i = 0; i < half; ++i) {
        const float angle = static_cast<float>(p) * inv_freq_[i];  // freqs = pos ⊗ inv_freq, in fp32
        pc[p * D + i] = pc[p * D + i + half] = std::cos(angle);    // emb = cat(freqs, freqs)
        ps[p * D + i] = ps[p * D + i + half] = std::sin(angle);
      }
    cos_ = c;
    sin_ = s;
  }
  auto rows = [&](const Tensor& t) { return make_view(t, {length, D}, {D, 1}, start * D); };
  return {rows(cos_), rows(sin_)};
}

Tensor apply_rope(const Tensor& x, int64_t start_pos, const RotaryEmbedding& rope) {
  check_rope_input("apply_rope", x, start_pos, rope);
  RotaryEmbedding::Tables tab = rope.tables(start_pos, x.size(1));
  Tensor out = rope_rotate(x, tab.cos, tab.sin, +1.0);
  return record("apply_rope", out, {x}, [tab](const Tensor& dout, const Needs&) {
    // forward: out = R(angle) x, an orthogonal map, so dx = R(angle)ᵀ dout = R(-angle) dout
    return Grads{rope_rotate(dout, tab.cos, tab.sin, -1.0)};
  });
}

Tensor apply_rope_reference(const Tensor& x, int64_t start_pos, const RotaryEmbedding& rope) {
  check_rope_input("apply_rope_reference", x, start_pos, rope);
  const int64_t T = x.size(1), D = x.size(3), half = D / 2;
  RotaryEmbedding::Tables tab = rope.tables(start_pos, T);
  // shape: (T, D) -> (T, 1, D), broadcast over batch and heads to (B, T, H, D)
  auto spread = [&](const Tensor& table) {
    return broadcast_to(reshape(cast(table, x.dtype()), {T, 1, D}), x.shape());
  };
  // rotate_half([x1, x2]) = [-x2, x1]
  Tensor x1 = narrow(x, 3, 0, half), x2 = narrow(x, 3, half, half);
  Tensor rotated = concat({neg(x2), x1}, 3);
  return add(mul(x, spread(tab.cos)), mul(rotated, spread(tab.sin)));
}

}  // namespace hydra::nn
