#include "tensor/index.h"

#include <algorithm>
#include <cstring>

#include "tensor/copy.h"
#include "tensor/dispatch.h"
#include "tensor/parallel.h"
#include "tensor/strided.h"

namespace hydra::kernels {

namespace {

// A shape seen as (outer, size, inner) around dim: dims before it, dim itself, dims after it.
struct Split {
  int64_t outer = 1, size = 1, inner = 1;
};

Split split_at(const Shape& shape, int64_t dim) {
  Split s;
  for (int64_t d = 0; d < dim; ++d) s.outer *= shape[d];
  s.size = shape[dim];
  for (size_t d = dim + 1; d < shape.size(); ++d) s.inner *= shape[d];
  return s;
}

// The 1-D index as int64 values. The caller has validated it (check_index_1d or its own check, once, at
// the API boundary); here a bad entry is a bug in Hydra.
std::vector<int64_t> index_values(const Tensor& index, int64_t size) {
  HYDRA_ASSERT(index.dim() == 1 && (index.dtype() == DType::Int32 || index.dtype() == DType::Int64));
  std::vector<int64_t> idx = index.to_vector<int64_t>();
  for (int64_t i : idx) HYDRA_ASSERT(i >= 0 && i < size, "index ", i, " outside [0, ", size, ")");
  return idx;
}

// Source rows grouped by the block of destination rows they add into: block k (destination rows
// [k * rows_per_block, (k + 1) * rows_per_block)) receives sources[start[k] .. start[k + 1]), in
// increasing order. A serial counting sort, O(n + blocks): cheap next to the n rows the scatter moves.
struct IndexBuckets {
  int64_t rows_per_block = 1;
  std::vector<int64_t> start, sources;
};

IndexBuckets bucket_by_block(const std::vector<int64_t>& idx, int64_t size, int64_t blocks) {
  IndexBuckets b;
  b.rows_per_block = std::max<int64_t>(1, (size + blocks - 1) / blocks);
  b.start.assign(blocks + 1, 0);
  b.sources.resize(idx.size());
  for (int64_t v : idx) ++b.start[v / b.rows_per_block + 1];
  for (int64_t k = 0; k < blocks; ++k) b.start[k + 1] += b.start[k];
  std::vector<int64_t> next(b.start.begin(), b.start.end() - 1);
  for (size_t i = 0; i < idx.size(); ++i) b.sources[next[idx[i] / b.rows_per_block]++] = static_cast<int64_t>(i);
  return b;
}

// Runs f(o, c0, c1) for every o in [0, outer) and disjoint column blocks [c0, c1) covering [0, inner),
// in parallel; `depth` is how many rows each column is summed over (the work per column), `line` the
// elements in a cache line. A call owns its (o, columns) outright and walks the rows itself, so it can
// accumulate into them in a fixed order without racing anyone: that is what makes scatter_add
// deterministic. The split itself may then depend on the thread count; the sums do not.
// NOTE: columns are split only as far as needed for one task per thread, and never below a cache line:
// a narrow block strides through memory (one line per row), which measured several times slower than
// whole rows.
template <class F>
void for_each_column_block(int64_t outer, int64_t inner, int64_t depth, int64_t line, F&& f) {
  const int64_t want_blocks = std::max<int64_t>(1, num_threads() / std::max<int64_t>(outer, 1));
  const int64_t width = std::max(line, ((inner + want_blocks - 1) / want_blocks + line - 1) / line * line);
  const int64_t blocks = (inner + width - 1) / width;
  const int64_t grain = rows_grain(depth * width);
  parallel_for(0, outer * blocks, grain, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t o = t / blocks, k = t % blocks;
      f(o, k * width, std::min(inner, (k + 1) * width));
    }
  });
}

// Where gather reads (and scatter_add writes): the positions p of an index tensor, seen as (o, j, c)
// around dim, mapped into tensor t with p[dim] replaced by k:
//   t's element = outer_offsets[o] + inner_offsets[c] + k * dim_stride   (in elements from t's storage).
// index.size(d) <= t.size(d) off dim, so distinct (o, c) reach distinct elements of t.
struct GatherMap {
  Split index;  // the index shape split around dim
  std::vector<int64_t> outer_offsets, inner_offsets;
  int64_t dim_stride = 0;
};

GatherMap make_gather_map(const Tensor& t, int64_t dim, const Shape& index_shape) {
  GatherMap m;
  m.index = split_at(index_shape, dim);
  m.dim_stride = t.strides()[dim];
  const Shape outer_shape(index_shape.begin(), index_shape.begin() + dim);
  const Shape inner_shape(index_shape.begin() + dim + 1, index_shape.end());
  const Strides outer_strides(t.strides().begin(), t.strides().begin() + dim);
  const Strides inner_strides(t.strides().begin() + dim + 1, t.strides().end());
  for_each_offset(outer_shape, outer_strides, t.offset(), [&](int64_t off) { m.outer_offsets.push_back(off); });
  for_each_offset(inner_shape, inner_strides, 0, [&](int64_t off) { m.inner_offsets.push_back(off); });
  return m;
}

// gather / scatter_add: index has t's rank, may be smaller than t off dim, and holds values in
// [0, t.size(dim)). `index` must be dense; reports the first bad entry by its position.
template <class I>
void check_gather_index(const char* op, const Shape& t_shape, int64_t dim, const Tensor& index) {
  const Shape& is = index.shape();
  HYDRA_CHECK(is.size() == t_shape.size(), op, ": index shape ", shape_str(is), " and x shape ",
              shape_str(t_shape), " have different numbers of dims");
  for (size_t d = 0; d < is.size(); ++d)
    HYDRA_CHECK(static_cast<int64_t>(d) == dim || is[d] <= t_shape[d], op, ": index shape ", shape_str(is),
                " is larger than x shape ", shape_str(t_shape), " at dim ", d,
                " (only the gathered dim ", dim, " may be larger)");
  const I* pi = index.data<I>();
  const int64_t n = index.numel(), size = t_shape[dim];
  for (int64_t e = 0; e < n; ++e) {
    if (pi[e] >= 0 && pi[e] < size) continue;
    HYDRA_CHECK(false, op, ": index ", static_cast<int64_t>(pi[e]), " at position ", shape_str(unravel_index(e, is)),
                " is out of range for dim ", dim, " of size ", size, " (x shape ", shape_str(t_shape),
                ", index shape ", shape_str(is), ")");
  }
}

}  // namespace

// One serial pass: an index holds one entry per selected row, so it is small next to the data it moves,
// and a serial check reports the first bad entry whatever the thread count.
void check_index_1d(const char* op, const Tensor& index, const Shape& x_shape, int64_t dim) {
  dispatch_index(index.dtype(), op, [](auto) {});  // rejects float indices with the standard message
  HYDRA_CHECK(index.dim() == 1, op, ": index must be 1-D, got shape ", shape_str(index.shape()));
  const std::vector<int64_t> idx = index.to_vector<int64_t>();
  const int64_t size = x_shape[dim];
  for (size_t i = 0; i < idx.size(); ++i)
    HYDRA_CHECK(idx[i] >= 0 && idx[i] < size, op, ": index ", idx[i], " at position ", i,
                " is out of range for dim ", dim, " of size ", size, " (x shape ", shape_str(x_shape), ")");
}

Tensor index_select_raw(const Tensor& x_any, int64_t dim, const Tensor& index) {
  HYDRA_ASSERT(dim >= 0 && dim < x_any.dim());
  const std::vector<int64_t> idx = index_values(index, x_any.size(dim));
  // NOTE: a strided x is made dense first (one pass over it) so that every output row below is one
  // memcpy. The hot case, the embedding table (V, C), is a dense parameter and is never copied.
  const Tensor x = contiguous_raw(x_any);
  const Split s = split_at(x.shape(), dim);
  const int64_t n = static_cast<int64_t>(idx.size());
  Shape out_shape = x.shape();
  out_shape[dim] = n;
  Tensor out = empty(out_shape, x.dtype());

  // out viewed as (outer, n, inner) and x as (outer, size, inner): output row (o, i) is x's row
  // (o, idx[i]). Rows are independent, so any split over them gives the same bytes.
  const int64_t row_bytes = s.inner * static_cast<int64_t>(dtype_size(x.dtype()));
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(out.raw_data());
  parallel_for(0, s.outer * n, rows_grain(s.inner), [&](int64_t lo, int64_t hi) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t o = r / n, i = r % n;
      std::memcpy(dst + r * row_bytes, src + (o * s.size + idx[i]) * row_bytes, row_bytes);
    }
  });
  return out;
}

void index_add_into(const Tensor& dst, int64_t dim, const Tensor& index, const Tensor& src_any) {
  HYDRA_ASSERT(dim >= 0 && dim < dst.dim());
  HYDRA_ASSERT(dst.is_contiguous(), "index_add needs a dense destination");
  const std::vector<int64_t> idx = index_values(index, dst.size(dim));
  const int64_t n = static_cast<int64_t>(idx.size());
  Shape want = dst.shape();
  want[dim] = n;
  HYDRA_CHECK(src_any.shape() == want && src_any.dtype() == dst.dtype(), "index_add: source shape ",
              shape_str(src_any.shape()), " (", dtype_name(src_any.dtype()), ") does not match ",
              shape_str(want), " (", dtype_name(dst.dtype()), ")");
  const Tensor src = contiguous_raw(src_any);
  const Split s = split_at(dst.shape(), dim);
  // Blocks of destination rows: one per thread when the slabs (outer) alone are too few, one when the
  // whole scatter is tiny. The block count changes who adds, never the order of the additions.
  // NOTE: not more: a task skips the rows of other blocks as it streams through src, and on a 2-core
  // box 4 blocks per thread measured 2x slower than 1 (a (4096, 256) table, 20000 indices).
  const int64_t total = s.outer * n * s.inner;
  int64_t blocks = total <= kGrainElementwise ? 1 : num_threads() / std::max<int64_t>(s.outer, 1);
  blocks = std::clamp<int64_t>(blocks, 1, std::max<int64_t>(s.size, 1));
  const IndexBuckets b = bucket_by_block(idx, s.size, blocks);
  const int64_t block_work = std::max<int64_t>(1, n / blocks * s.inner);
  dispatch_float(dst.dtype(), "index_add", [&](auto tag) {
    using T = decltype(tag);
    T* pd = dst.data<T>();
    const T* ps = src.data<T>();
    // dst viewed as (outer, size, inner), src as (outer, n, inner). Task t = (o, block k) owns dst's
    // rows of block k in slab o and adds into them, whole rows at a time, the source rows pointing there.
    // NOTE: sources are visited in increasing i, so each destination row sums src[i0] + src[i1] + ...
    // with i0 < i1 < ... whatever the thread count, and src streams forward through memory (visiting
    // it in destination-row order measured 2.5x slower). A very frequent row is summed by one task.
    const int64_t grain = rows_grain(block_work);
    parallel_for(0, s.outer * blocks, grain, [&](int64_t lo, int64_t hi) {
      for (int64_t t = lo; t < hi; ++t) {
        const int64_t o = t / blocks, k = t % blocks;
        for (int64_t j = b.start[k]; j < b.start[k + 1]; ++j) {
          const int64_t i = b.sources[j];
          T* d = pd + (o * s.size + idx[i]) * s.inner;
          const T* row = ps + (o * n + i) * s.inner;
          for (int64_t c = 0; c < s.inner; ++c) d[c] += row[c];
        }
      }
    });
  });
}

Tensor gather_raw(const Tensor& x, int64_t dim, const Tensor& index_any) {
  HYDRA_ASSERT(dim >= 0 && dim < x.dim());
  const Tensor index = contiguous_raw(index_any);
  Tensor out = empty(index.shape(), x.dtype());
  dispatch_index(index.dtype(), "gather", [&](auto itag) {
    using I = decltype(itag);
    check_gather_index<I>("gather", x.shape(), dim, index);
    // x is read where it lies (any strides): gather touches only out.numel() of its elements.
    const GatherMap m = make_gather_map(x, dim, index.shape());
    const I* pi = index.data<I>();
    const int64_t inner = m.index.inner, rows = m.index.outer * m.index.size;
    dispatch_all(x.dtype(), "gather", [&](auto tag) {
      using T = decltype(tag);
      const T* px = x.storage_data<T>();
      T* po = out.data<T>();
      // out and index are dense (outer, m, inner); output row r = (o, j).
      parallel_for(0, rows, rows_grain(inner), [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          const int64_t base = m.outer_offsets[r / m.index.size];
          for (int64_t c = 0; c < inner; ++c)
            po[r * inner + c] = px[base + m.inner_offsets[c] + pi[r * inner + c] * m.dim_stride];
        }
      });
    });
  });
  return out;
}

void scatter_add_into(const Tensor& dst, int64_t dim, const Tensor& index_any, const Tensor& src_any) {
  HYDRA_ASSERT(dim >= 0 && dim < dst.dim());
  HYDRA_ASSERT(dst.is_contiguous(), "scatter_add needs a dense destination");
  HYDRA_CHECK(src_any.shape() == index_any.shape() && src_any.dtype() == dst.dtype(),
              "scatter_add: source shape ", shape_str(src_any.shape()), " (", dtype_name(src_any.dtype()),
              ") does not match index shape ", shape_str(index_any.shape()), " (", dtype_name(dst.dtype()), ")");
  const Tensor index = contiguous_raw(index_any), src = contiguous_raw(src_any);
  dispatch_index(index.dtype(), "scatter_add", [&](auto itag) {
    using I = decltype(itag);
    check_gather_index<I>("scatter_add", dst.shape(), dim, index);
    const GatherMap m = make_gather_map(dst, dim, index.shape());
    const I* pi = index.data<I>();
    const int64_t size = m.index.size, inner = m.index.inner;
    dispatch_float(dst.dtype(), "scatter_add", [&](auto tag) {
      using T = decltype(tag);
      T* pd = dst.storage_data<T>();
      const T* ps = src.data<T>();
      // NOTE: positions (o, c) own disjoint elements of dst (see GatherMap); only the rows j along dim
      // can collide, and each task walks them in order, so sums do not depend on the thread count.
      const int64_t line = 64 / sizeof(T);
      for_each_column_block(m.index.outer, inner, size, line, [&](int64_t o, int64_t c0, int64_t c1) {
        const int64_t base = m.outer_offsets[o];
        for (int64_t j = 0; j < size; ++j) {
          const int64_t r = (o * size + j) * inner;
          for (int64_t c = c0; c < c1; ++c)
            pd[base + m.inner_offsets[c] + pi[r + c] * m.dim_stride] += ps[r + c];
        }
      });
    });
  });
}

}  // namespace hydra::kernels
