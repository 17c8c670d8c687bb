// Strided copies: the one kernel that moves data between layouts (and dtypes).
//
// Naming: no autograd here; `_raw` returns a new tensor, `_into` writes into dst (differentiable ops: autograd/).
#pragma once

#include "tensor/tensor.h"

namespace hydra::kernels {

// dst[i] = src[i] for every index; shapes must be equal, layouts and dtypes may differ (values are
// converted with static_cast). dst must not overlap src or itself (src may: stride 0 is fine). Dims
// dense in both are merged, transposes go in cache-sized tiles, and the work is split across threads
// (see copy.cpp).
void copy_into(const Tensor& dst, const Tensor& src);

// A dense row-major copy of t (always a new tensor).
Tensor clone_raw(const Tensor& t);

// t itself if already dense row-major, else a dense copy. Not recorded by autograd: the differentiable
// version is hydra::contiguous in autograd/ops_view.h.
Tensor contiguous_raw(const Tensor& t);

// A dense copy converted to dtype.
Tensor cast_raw(const Tensor& t, DType dtype);

}  // namespace hydra::kernels
