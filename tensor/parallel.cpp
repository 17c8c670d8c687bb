#include "tensor/parallel.h"

#include <cblas.h>

#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <tbb/global_control.h>

#include "tensor/error.h"

namespace hydra {

namespace {
std::mutex g_mutex;
std::unique_ptr<tbb::global_control> g_control;
int g_threads = 0;
}  // namespace

int default_num_threads() {
  int hw = static_cast<int>(std::thread::hardware_concurrency());
  if (hw < 1) hw = 1;
  if (const char* env = std::getenv("HYDRA_NUM_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    HYDRA_CHECK(end != env && *end == '\0' && v >= 1 && v <= 4096,
                "HYDRA_NUM_THREADS='", env, "' is not a thread count (expected an integer >= 1)");
    return static_cast<int>(v);
  }
  return hw;
}

void set_num_threads(int n) {
  HYDRA_CHECK(n >= 1, "thread count must be >= 1, got ", n);
  std::lock_guard<std::mutex> lock(g_mutex);
  g_control.reset();  // only one limit at a time
  g_control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism,
                                                    static_cast<size_t>(n));
  g_threads = n;
  // BLAS stays on one thread whatever n is: parallel GEMMs are TBB tasks (tensor/gemm.cpp).
  openblas_set_num_threads(1);
}

int num_threads() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_threads > 0) return g_threads;
  return static_cast<int>(tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
}

std::string blas_description() {
  const char* kinds[] = {"serial", "pthreads", "openmp"};
  int p = openblas_get_parallel();
  std::string kind = (p >= 0 && p <= 2) ? kinds[p] : "unknown";
  return std::string("OpenBLAS (") + kind + " build, 1 thread per call) " + openblas_get_config() + ", core " +
         openblas_get_corename();
}

std::string simd_description() {
#if defined(__AVX512F__)
  std::string out = "compiled for AVX-512";
#elif defined(__AVX2__)
  std::string out = "compiled for AVX2";
#elif defined(__SSE2__)
  std::string out = "compiled for SSE2";
#else
  std::string out = "compiled without x86 vector extensions";
#endif
#if defined(__x86_64__)
  std::string cpu;
  auto add = [&](bool has, const char* name) {
    if (has) cpu += (cpu.empty() ? "" : ", ") + std::string(name);
  };
  __builtin_cpu_init();
  add(__builtin_cpu_supports("avx2"), "AVX2");
  add(__builtin_cpu_supports("avx512f"), "AVX-512F");
  add(__builtin_cpu_supports("avx512bf16"), "AVX-512 BF16");
  out += "; CPU has " + (cpu.empty() ? std::string("none of AVX2/AVX-512") : cpu);
#endif
  return out;
}

}  // namespace hydra
