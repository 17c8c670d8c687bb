#include "tensor/matmul.h"

#include <algorithm>

#include "tensor/copy.h"
#include "tensor/dispatch.h"
#include "tensor/gemm.h"
#include "tensor/parallel.h"

namespace hydra::kernels {

namespace {

// How BLAS should read a (rows × cols) matrix stored with strides (row_stride, col_stride).
struct Operand {
  bool ok = false;    // false: the layout is neither dense nor transposed-dense; copy it first
  bool trans = false;
  int64_t ld = 1;
};

Operand describe(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  // Row-major: consecutive columns are adjacent. A dim of size 1 may carry any stride.
  if ((col_stride == 1 || cols == 1) && (row_stride >= std::max<int64_t>(cols, 1) || rows == 1))
    return {true, false, rows == 1 ? std::max<int64_t>(cols, 1) : row_stride};
  // Column-major, i.e. a transposed row-major matrix: consecutive rows are adjacent.
  if ((row_stride == 1 || rows == 1) && (col_stride >= std::max<int64_t>(rows, 1) || cols == 1))
    return {true, true, cols == 1 ? std::max<int64_t>(rows, 1) : col_stride};
  return {};
}

Operand describe_last2(const Tensor& t) {
  const int64_t n = t.dim();
  return describe(t.shape()[n - 2], t.shape()[n - 1], t.strides()[n - 2], t.strides()[n - 1]);
}

}  // namespace

Tensor matmul_raw(const Tensor& a_in, const Tensor& b_in) {
  HYDRA_CHECK(a_in.dim() >= 2 && b_in.dim() >= 2, "matmul: shapes ", shape_str(a_in.shape()), " and ",
              shape_str(b_in.shape()), " must both have at least 2 dims");
  HYDRA_CHECK(a_in.dim() == b_in.dim(), "matmul: shapes ", shape_str(a_in.shape()), " and ",
              shape_str(b_in.shape()), " have different numbers of dims (batched matmul needs equal batch dims)");
  HYDRA_CHECK(a_in.dtype() == b_in.dtype(), "matmul: dtypes ", dtype_name(a_in.dtype()), " and ",
              dtype_name(b_in.dtype()), " differ");
  const int64_t nd = a_in.dim();
  const int64_t M = a_in.shape()[nd - 2], K = a_in.shape()[nd - 1], N = b_in.shape()[nd - 1];
  HYDRA_CHECK(b_in.shape()[nd - 2] == K, "matmul: shapes ", shape_str(a_in.shape()), " and ",
              shape_str(b_in.shape()), " cannot be multiplied (inner dims ", K, " and ", b_in.shape()[nd - 2],
              " differ)");
  Shape batch(a_in.shape().begin(), a_in.shape().end() - 2);
  HYDRA_CHECK(Shape(b_in.shape().begin(), b_in.shape().end() - 2) == batch, "matmul: shapes ",
              shape_str(a_in.shape()), " and ", shape_str(b_in.shape()), " have different batch dims");

  Tensor a = a_in, b = b_in;
  Operand oa = describe_last2(a), ob = describe_last2(b);
  if (!oa.ok) {
    a = clone_raw(a);
    oa = describe_last2(a);
  }
  if (!ob.ok) {
    b = clone_raw(b);
    ob = describe_last2(b);
  }
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor c = empty(out_shape, a.dtype());
  const int64_t n_batch = shape_numel(batch);

  dispatch_float(a.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.storage_data<T>();
    const T* pb = b.storage_data<T>();
    T* pc = c.data<T>();
    // Offset of matrix `i` of a batched operand, from its batch strides.
    auto batch_offset = [&](const Tensor& t, int64_t i) {
      int64_t off = t.offset();
      for (int64_t d = nd - 3; d >= 0; --d) {
        off += (i % t.shape()[d]) * t.strides()[d];
        i /= t.shape()[d];
      }
      return off;
    };
    if (n_batch == 1) {
      gemm<T>(oa.trans, ob.trans, M, N, K, T(1), pa + batch_offset(a, 0), oa.ld, pb + batch_offset(b, 0), ob.ld, T(0),
              pc, std::max<int64_t>(N, 1));
      return;
    }
    // Many small products: one task per group of matrices, each a serial GEMM (no nested threading).
    const double flops = 2.0 * static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
    const int64_t grain = std::max<int64_t>(1, static_cast<int64_t>(1e6 / std::max(flops, 1.0)));
    auto run = [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i)
        gemm_serial<T>(oa.trans, ob.trans, M, N, K, T(1), pa + batch_offset(a, i), oa.ld, pb + batch_offset(b, i),
                       ob.ld, T(0), pc + i * M * N, std::max<int64_t>(N, 1));
    };
    if (gemm_runs_in_parallel())
      parallel_for(0, n_batch, grain, run);
    else
      run(0, n_batch);
  });
  return c;
}

}  // namespace hydra::kernels
