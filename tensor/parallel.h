// Who runs what on which core.
//
// Policy (measured on this machine kind; figures in bench/README.md): oneTBB owns every worker
// thread. OpenBLAS (the pthreads build, pinned by the linker's RUNPATH) is set to one thread, so a GEMM
// never starts threads of its own; large GEMMs are cut into tiles by tensor/gemm.cpp and the tiles run
// as TBB tasks, each a single-threaded BLAS call. One pool, no oversubscription, no OpenMP threads
// spinning against TBB between regions, and a GEMM's tiling depends only on its shape, so results do
// not depend on the thread count. (Debian's serial OpenBLAS would be the obvious choice but is built
// without locks: concurrent calls from TBB tasks returned wrong results.)
//
// parallel_for hands out index ranges; kernels must make each element's result independent of how
// the range is split (no shared accumulators), which is what keeps results bit-identical for any
// thread count.
#pragma once

#include <cstdint>
#include <string>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

namespace hydra {

// Limits TBB to n worker threads (n >= 1) for the whole process. Governs GEMM too (see above).
void set_num_threads(int n);
// The current limit.
int num_threads();
// HYDRA_NUM_THREADS if set (and valid), else every core.
int default_num_threads();
// One line describing the BLAS library actually loaded (variant, core type), for banners and bench.
std::string blas_description();
// What vector instructions the kernels were compiled for and what this CPU offers, for banners:
// "compiled for AVX-512; CPU has AVX2, AVX-512F, AVX-512 BF16".
std::string simd_description();

// Calls f(lo, hi) on disjoint sub-ranges covering [begin, end). Ranges no longer than `grain` run on
// the calling thread, so tiny tensors never pay for task scheduling.
template <class F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, F&& f) {
  if (end <= begin) return;
  if (grain < 1) grain = 1;
  if (end - begin <= grain) {
    f(begin, end);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(begin, end, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { f(r.begin(), r.end()); });
}

// Grain sizes: roughly how many elements make a task worth ~10 µs.
constexpr int64_t kGrainElementwise = 32768;

}  // namespace hydra
