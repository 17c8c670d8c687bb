// Strided copies: the one kernel that moves data between layouts (and dtypes).
#pragma once

#include "tensor/tensor.h"

namespace hydra::kernels {

// dst[i] = src[i] for every index; shapes must be equal, layouts and dtypes may differ (values are
// converted with static_cast). dst must not overlap src. Parallel over rows.
void copy_into(const Tensor& dst, const Tensor& src);

// A dense row-major copy of t (always a new tensor).
Tensor clone(const Tensor& t);

// t itself if already dense row-major, else a dense copy. Not recorded by autograd: the differentiable
// version is hydra::contiguous in autograd/ops_view.h.
Tensor contiguous_raw(const Tensor& t);

// A dense copy converted to dtype.
Tensor cast_raw(const Tensor& t, DType dtype);

}  // namespace hydra::kernels
