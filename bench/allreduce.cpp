// The gradient all-reduce of data-parallel training (train/distributed.h): how fast P ranks sum a float32
// slab in rank order. Built only with MPI.
//
//   mpirun --allow-run-as-root -np 2 build/bench_allreduce [FLOATS [REPEATS]]
//
// FLOATS defaults to 75,526,656 (the `small` preset's parameters: its gradient slab when all train); REPEATS to 10. Rank 0
// prints the median time per all-reduce, the slab's size over that time ("algorithm" GB/s), and the
// bytes each rank sends (the reduce-scatter and the all-gather each send (P-1)/P of the slab) over
// that time ("bus" GB/s, comparable across P). It checks the sum too (exits 1 when wrong).
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "bench/timing.h"
#include "tensor/parallel.h"
#include "train/distributed.h"

int main(int argc, char** argv) {
  using namespace hydra;
  dist::init(&argc, &argv);
  const long long n = argc > 1 ? std::atoll(argv[1]) : 75'526'656;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 10;
  if (n < 1 || repeats < 1) {
    std::fprintf(stderr, "usage: bench_allreduce [FLOATS >= 1 [REPEATS >= 1]]\n");
    return 2;
  }
  set_num_threads(1);
  const int P = dist::size(), r = dist::rank();
  std::vector<float> slab(static_cast<size_t>(n));
  for (long long i = 0; i < n; ++i) slab[static_cast<size_t>(i)] = static_cast<float>((i * 7 + r) % 1000) * 1e-3f;
  dist::allreduce_in_rank_order(slab);  // warm-up: connections, buffers
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    dist::barrier();
    const double t0 = bench::now_seconds();
    dist::allreduce_in_rank_order(slab);
    times.push_back(bench::now_seconds() - t0);
  }
  // And the sum is right: small integers, exact in float32 whatever the order.
  for (long long i = 0; i < n; ++i) slab[static_cast<size_t>(i)] = static_cast<float>((i % 13) * (r + 1));
  dist::allreduce_in_rank_order(slab);
  long long wrong = 0;
  for (long long i = 0; i < n; ++i)
    wrong += slab[static_cast<size_t>(i)] != static_cast<float>((i % 13) * P * (P + 1) / 2);
  if (wrong > 0) {
    std::fprintf(stderr, "bench_allreduce: rank %d: %lld of %lld sums are wrong\n", r, wrong, n);
    dist::abort(1);
  }
  const double t = bench::median(times);
  const double bytes = static_cast<double>(n) * sizeof(float);
  if (r == 0) {
    std::printf("all-reduce in rank order of %lld floats (%.1f MB) over %d ranks (%s)\n", n, bytes / 1e6, P,
                P > 1 ? dist::library().c_str() : "one process: nothing to do");
    std::printf("median of %d: %.4f s; algorithm %.3f GB/s; bus (sent per rank) %.3f GB/s\n", repeats, t,
                bytes / t / 1e9, 2.0 * (P - 1) / P * bytes / t / 1e9);
  }
  dist::finalize();
  return 0;
}
