// copy_into: one kernel for every pair of layouts and every pair of dtypes.
//
// Each call is planned once (simplify_layouts, tensor/strided.h): size-1 dims are dropped, dims are
// ordered by dst stride and dims contiguous in both tensors are merged, so a dense copy becomes one
// long row and a narrowed one a few rows of the narrowed width. The last dim is then the one dst is
// densest along (the columns). Two cases:
//   - src is densest along the columns too, or along no dim at all (a broadcast): copy row by row,
//     long rows cut into runs of at most kRun elements so that even one long row splits across cores;
//   - src is densest along another dim (the rows): a transpose, or a permute that moves the innermost
//     dim, e.g. (B, H, T, D) -> (B, H, D, T). Walking dst rows would read src a stride apart, one cache
//     line per element. Instead the copy goes in kTile x kTile tiles over (rows, columns): the tile is
//     read from src along the rows into a small dense buffer, then written to dst along the columns,
//     so both tensors are accessed in whole cache lines.
// The blocks (tiles, or runs of a row) form a grid that parallel_for hands out in row-major order; a
// task locates its first block by division (PairCursor) and steps to the next ones by additions.
// Dtype conversion is a static_cast on the way out of src.
#include "tensor/copy.h"

#include <algorithm>

#include "tensor/dispatch.h"
#include "tensor/parallel.h"
#include "tensor/strided.h"

namespace hydra::kernels {

namespace {

// NOTE: measured on float32 transposes of 4096x4096 and 2000x3000 (2 cores, AVX2): 64 was fastest or
// tied; 32 was up to 25% slower, 16 about half as fast, 128 as fast on 2000x3000 but a third as fast on
// 4096x4096. The buffer is 16 KB for 4-byte types, 32 KB for 8-byte ones. Copying a tile straight from
// src to dst, without the buffer, was about 2x slower: one side is then read or written a stride
// apart, 64 lines at a time (and with a power-of-two stride such as 4096 floats those lines all fall
// in the same L1 set and evict each other).
constexpr int64_t kTile = 64;
// The longest run of a row handed out as one block.
constexpr int64_t kRun = 4096;

// The dim a layout is densest along: the smallest nonzero stride (stride-0 dims are broadcasts, whose
// one element stays in cache whatever the order). -1 if every stride is 0.
int64_t densest_dim(const Strides& strides) {
  int64_t best = -1;
  for (int64_t d = 0; d < static_cast<int64_t>(strides.size()); ++d)
    if (strides[d] != 0 && (best < 0 || strides[d] < strides[best])) best = d;
  return best;
}

template <class D, class S>
void copy_typed(const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  PairLayout p = simplify_layouts(dst.shape(), dst.strides(), src.strides());
  if (p.shape.empty()) p = PairLayout{{1}, {0}, {0}};  // one element: one dim of size 1 to walk
  const int64_t n = static_cast<int64_t>(p.shape.size());
  const int64_t col = n - 1;
  const int64_t densest = densest_dim(p.src);
  const bool tiled = densest >= 0 && densest != col && p.src[densest] < p.src[col];
  const int64_t row = tiled ? densest : -1;

  // The grid of blocks: dim d is cut into blocks of block[d] indices (1 except for the columns and,
  // when tiled, the rows), so one step along grid dim d moves block[d] elements.
  std::vector<int64_t> block(n, 1);
  block[col] = std::min(p.shape[col], tiled ? kTile : kRun);
  if (tiled) block[row] = std::min(p.shape[row], kTile);
  Shape grid(n);
  Strides grid_dst(n), grid_src(n);
  for (int64_t d = 0; d < n; ++d) {
    grid[d] = (p.shape[d] + block[d] - 1) / block[d];
    grid_dst[d] = p.dst[d] * block[d];
    grid_src[d] = p.src[d] * block[d];
  }
  const int64_t dc = p.dst[col], sc = p.src[col];
  const int64_t dr = tiled ? p.dst[row] : 0, sr = tiled ? p.src[row] : 0;

  D* dbase = static_cast<D*>(dst.impl()->storage->data) + dst.offset();
  const S* sbase = static_cast<const S*>(src.impl()->storage->data) + src.offset();
  const int64_t block_numel = block[col] * (tiled ? block[row] : 1);
  parallel_for(0, shape_numel(grid), rows_grain(block_numel), [&](int64_t lo, int64_t hi) {
    D tile[kTile * kTile];  // tile[r * kTile + c]: rows r, columns c, in dst order
    PairCursor at(grid, grid_dst, grid_src, lo);
    for (int64_t b = lo; b < hi; ++b, at.next()) {
      D* d = dbase + at.a;
      const S* s = sbase + at.b;
      // This block's extent: a full block, or what is left at the high end of a dim.
      const int64_t cols = std::min(block[col], p.shape[col] - at.index[col] * block[col]);
      if (!tiled) {
        for (int64_t c = 0; c < cols; ++c) d[c * dc] = static_cast<D>(s[c * sc]);
        continue;
      }
      const int64_t rows = std::min(block[row], p.shape[row] - at.index[row] * block[row]);
      for (int64_t c = 0; c < cols; ++c)  // src, along its dense dim
        for (int64_t r = 0; r < rows; ++r) tile[r * kTile + c] = static_cast<D>(s[c * sc + r * sr]);
      for (int64_t r = 0; r < rows; ++r)  // dst, along its dense dim
        for (int64_t c = 0; c < cols; ++c) d[r * dr + c * dc] = tile[r * kTile + c];
    }
  });
}

}  // namespace

void copy_into(const Tensor& dst, const Tensor& src) {
  HYDRA_CHECK(dst.shape() == src.shape(), "copy: destination shape ", shape_str(dst.shape()),
              " differs from source shape ", shape_str(src.shape()));
  dispatch_all(dst.dtype(), "copy", [&](auto dtag) {
    dispatch_all(src.dtype(), "copy", [&](auto stag) { copy_typed<decltype(dtag), decltype(stag)>(dst, src); });
  });
}

Tensor clone_raw(const Tensor& t) {
  Tensor out = empty(t.shape(), t.dtype());
  copy_into(out, t);
  return out;
}

Tensor contiguous_raw(const Tensor& t) { return t.is_contiguous() ? t : clone_raw(t); }

Tensor cast_raw(const Tensor& t, DType dtype) {
  Tensor out = empty(t.shape(), dtype);
  copy_into(out, t);
  return out;
}

}  // namespace hydra::kernels
