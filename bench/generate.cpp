// Decoding speed: hydra::generate (hydra/generate.h) on presets, batch 1, greedy, a 32-token prompt:
// prefill and decode tokens/s for one head, the mean of all heads, the product of experts, and
// speculative decoding (gamma 4) with the preset's unrelated heads and with every head a copy of head 0
// (every proposal accepted: the best case). Then the few-row GEMM (tensor/gemm_small.h) against one
// cblas_sgemm call at decoding's shapes (M = 1 and the 4 rows of a verification).
// Weights are random (the speed does not depend on them); medians of --reps runs.
//
// Decoding one token reads every weight it uses once, so its speed is bounded by the memory's read
// bandwidth: the program measures that bandwidth (a parallel sum over 1 GiB) and prints, for one head
// and for all heads, the bytes of weights a token reads and the share of that bound the decode reached.
//
// With --dtype bf16 every weight matrix is bfloat16 first (nn::convert_matrices_to_bfloat16; the bytes per
// token halve) and the bf16 kernel's path is printed.
//
// Usage: bench_generate [--threads N] [--reps R] [--presets tiny,small] [--new-tokens N] [--dtype fp32|bf16]
#include <cblas.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/timing.h"
#include "hydra/generate.h"
#include "nn/module.h"
#include "tensor/allocator.h"
#include "tensor/gemm_bf16.h"
#include "tensor/gemm_small.h"
#include "tensor/parallel.h"

using namespace hydra;

namespace {

// Read bandwidth in bytes/s: the median of 5 parallel sums over 1 GiB of floats (written first, so
// the pages exist).
double read_bandwidth() {
  const int64_t n = int64_t{1} << 28;
  std::vector<float> v(static_cast<size_t>(n), 1.0f);
  constexpr int64_t kChunk = 1 << 20;
  std::vector<double> rates;
  for (int r = 0; r < 5; ++r) {
    std::vector<float> partial(static_cast<size_t>(n / kChunk));
    const double t0 = bench::now_seconds();
    parallel_for(0, n / kChunk, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t c = lo; c < hi; ++c) {
        float acc[16] = {};
        const float* p = v.data() + c * kChunk;
        for (int64_t i = 0; i < kChunk; i += 16)
          for (int l = 0; l < 16; ++l) acc[l] += p[i + l];
        float s = 0;
        for (float a : acc) s += a;
        partial[static_cast<size_t>(c)] = s;
      }
    });
    const double t1 = bench::now_seconds();
    float total = 0;
    for (float x : partial) total += x;
    if (total != static_cast<float>(n)) std::printf("(bandwidth sum check failed: %g)\n", total);
    rates.push_back(static_cast<double>(n) * sizeof(float) / (t1 - t0));
  }
  return bench::median(rates);
}

// Bytes of weights one decoded token reads running `heads`: the trunk's blocks, those heads' blocks and
// the lm_head once (the embedding table contributes one row).
double bytes_per_token(HydraTransformer& model, const std::vector<int64_t>& heads) {
  double bytes = 0;
  for (auto& [name, t] : model.named_parameters()) {
    if (name == "trunk.embeddings.weight") continue;
    bool used = !name.starts_with("heads.");
    for (int64_t k : heads) used = used || name.starts_with("heads." + std::to_string(k) + ".");
    if (used) bytes += static_cast<double>(t->numel()) * static_cast<double>(dtype_size(t->dtype()));
  }
  return bytes;
}

double g_bandwidth = 0;

struct Rates {
  double prefill, decode, acceptance;
};

// Large blocks (>= 64 KiB, tensor/allocator.h) the allocator had to get from the OS, and all it handed
// out, over the timed runs: after the warm-up, decoding should take every large block from its cache.
uint64_t g_misses = 0, g_large_allocations = 0, g_tokens = 0;

Rates time_generate(HydraTransformer& model, const GenerateOptions& o, const std::vector<int64_t>& prompt, int reps) {
  std::vector<double> prefill, decode, acceptance;
  generate(model, prompt, o);  // warm-up
  const AllocatorStats before = allocator_stats();
  for (int r = 0; r < reps; ++r) {
    const GenerateResult g = generate(model, prompt, o);
    g_tokens += g.ids.size();
    prefill.push_back(static_cast<double>(g.prefill_tokens) / g.prefill_seconds);
    decode.push_back(static_cast<double>(g.ids.size()) / g.decode_seconds);
    acceptance.push_back(g.acceptance_rate());
  }
  const AllocatorStats after = allocator_stats();
  g_misses += after.cache_misses - before.cache_misses;
  g_large_allocations += (after.cache_misses + after.cache_hits) - (before.cache_misses + before.cache_hits);
  return {bench::median(prefill), bench::median(decode), bench::median(acceptance)};
}

// Every head's weights become head 0's.
void copy_head_zero(HydraTransformer& model) {
  auto params = model.named_parameters();
  for (auto& [name, t] : params) {
    if (!name.starts_with("heads.") || name.starts_with("heads.0.")) continue;
    const std::string source = "heads.0" + name.substr(name.find('.', 6));
    for (auto& [other, s] : params)
      if (other == source) std::memcpy(t->raw_data(), s->raw_data(), dtype_size(t->dtype()) * static_cast<size_t>(t->numel()));
  }
}

void bench_preset(const std::string& preset, int new_tokens, int reps, bool bf16) {
  auto model = HydraTransformerConfig::preset(preset).build("cpu", 1);
  if (bf16) nn::convert_matrices_to_bfloat16(*model);
  const int64_t V = model->config().base_config.vocab_size;
  std::vector<int64_t> prompt;
  for (int64_t i = 0; i < 32; ++i) prompt.push_back((i * 7919 + 13) % V);
  std::printf("\n%s (%lld heads), %s weights, %d new tokens after a 32-token prompt, greedy:\n", preset.c_str(),
              static_cast<long long>(model->config().n_heads), bf16 ? "bfloat16" : "float32", new_tokens);
  std::printf("  %-36s %12s %12s %11s\n", "mode", "prefill t/s", "decode t/s", "acceptance");
  GenerateOptions o;
  o.temperature = 0;
  o.max_new_tokens = new_tokens;
  auto row = [&](const char* what, GenerateOptions options) {
    const Rates r = time_generate(*model, options, prompt, reps);
    std::printf("  %-36s %12.0f %12.1f", what, r.prefill, r.decode);
    if (options.mode == GenerateMode::Speculative) {
      std::printf(" %11.2f\n", r.acceptance);
      return;
    }
    std::vector<int64_t> heads = options.heads;
    if (options.mode == GenerateMode::Head) heads = {options.head};
    if (heads.empty())
      for (int64_t k = 0; k < model->config().n_heads; ++k) heads.push_back(k);
    const double bytes = bytes_per_token(*model, heads), bound = g_bandwidth / bytes;
    std::printf("   (%.0f MB/token, bound %.1f t/s: %.0f%%)\n", bytes / 1e6, bound, 100.0 * r.decode / bound);
  };
  o.mode = GenerateMode::Head;
  row("head:0", o);
  o.mode = GenerateMode::Mean;
  row("mean (all heads)", o);
  o.mode = GenerateMode::ProductOfExperts;
  row("poe (all heads)", o);
  o.mode = GenerateMode::Speculative;
  o.draft_head = 0;
  o.gamma = 4;
  row("speculative, gamma 4, unrelated heads", o);
  o.mode = GenerateMode::ProductOfExperts;
  o.draft_head.reset();
  o.heads.clear();
  for (int64_t k = 1; k < model->config().n_heads; ++k) o.heads.push_back(k);
  row("poe (heads 1..N-1: the verifiers)", o);
  std::printf("  large blocks (>= 64 KiB) per generated token, timed runs so far: %.2f handed out, %.4f new from the OS\n",
              static_cast<double>(g_large_allocations) / static_cast<double>(g_tokens),
              static_cast<double>(g_misses) / static_cast<double>(g_tokens));
  copy_head_zero(*model);
  o.mode = GenerateMode::Speculative;
  o.heads.clear();
  o.draft_head = 0;
  row("speculative, gamma 4, identical heads", o);
}

void bench_gemm(int reps) {
  std::printf("\nfew-row GEMM (C = A Bᵀ, one thread) vs one cblas_sgemm call, and the bf16 product on each\n"
              "path (tensor/gemm_bf16.h, one thread), microseconds:\n");
  std::printf("  %-28s %4s %10s %10s %11s %11s\n", "shape (N x K)", "M", "OpenBLAS", "Hydra", "bf16 avx512",
              "bf16 port.");
  const bool avx512 = kernels::cpu_has_avx512_bf16();
  struct Shape {
    const char* what;
    int64_t N, K;
  };
  for (const Shape s : {Shape{"tiny w1 (1024 x 256)", 1024, 256}, Shape{"tiny lm_head (4096 x 256)", 4096, 256},
                        Shape{"small w1 (2048 x 512)", 2048, 512}, Shape{"small w2 (512 x 2048)", 512, 2048},
                        Shape{"small lm_head (16384 x 512)", 16384, 512}}) {
    Generator gen(1);
    const std::vector<float> a = gen.normal({4, s.K}).to_vector<float>(), b = gen.normal({s.N, s.K}).to_vector<float>();
    std::vector<float> c(static_cast<size_t>(4 * s.N));
    std::vector<hydra::bfloat16> w(b.size());  // qualified: cblas.h has a bfloat16 of its own
    float_to_bfloat16(b.data(), w.data(), static_cast<int64_t>(b.size()));
    for (int64_t M : {1, 4}) {
      std::vector<double> t_blas, t_ours, t_avx512, t_portable;
      for (int r = 0; r < reps; ++r) {
        double t0 = bench::now_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(M), static_cast<blasint>(s.N),
                    static_cast<blasint>(s.K), 1.0f, a.data(), static_cast<blasint>(s.K), b.data(),
                    static_cast<blasint>(s.K), 0.0f, c.data(), static_cast<blasint>(s.N));
        double t1 = bench::now_seconds();
        kernels::small_gemm<float>(true, M, s.N, s.K, 1.0f, a.data(), s.K, b.data(), s.K, 0.0f, c.data(), s.N);
        double t2 = bench::now_seconds();
        t_blas.push_back(t1 - t0);
        t_ours.push_back(t2 - t1);
        const int threads = num_threads();
        set_num_threads(1);
        if (avx512)
          kernels::gemm_bf16_on(kernels::Bf16Path::Avx512Bf16, M, s.N, s.K, a.data(), s.K, w.data(), s.K, c.data(), s.N);
        double t3 = bench::now_seconds();
        kernels::gemm_bf16_on(kernels::Bf16Path::Portable, M, s.N, s.K, a.data(), s.K, w.data(), s.K, c.data(), s.N);
        double t4 = bench::now_seconds();
        set_num_threads(threads);
        t_avx512.push_back(t3 - t2);
        t_portable.push_back(t4 - t3);
      }
      std::printf("  %-28s %4lld %10.1f %10.1f %11.1f %11.1f\n", s.what, static_cast<long long>(M),
                  1e6 * bench::median(t_blas), 1e6 * bench::median(t_ours), avx512 ? 1e6 * bench::median(t_avx512) : 0.0,
                  1e6 * bench::median(t_portable));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  int threads = default_num_threads(), reps = 5, new_tokens = 64;
  std::string presets = "tiny,small", dtype = "fp32";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--threads") threads = std::stoi(argv[i + 1]);
    else if (flag == "--reps") reps = std::stoi(argv[i + 1]);
    else if (flag == "--new-tokens") new_tokens = std::stoi(argv[i + 1]);
    else if (flag == "--presets") presets = argv[i + 1];
    else if (flag == "--dtype") dtype = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: bench_generate [--threads N] [--reps R] [--presets tiny,small] [--new-tokens N] "
                           "[--dtype fp32|bf16]\n");
      return 2;
    }
  }
  set_num_threads(threads);
  openblas_set_num_threads(1);
  std::printf("bench_generate: %d thread(s), medians of %d runs\n", threads, reps);
  if (dtype != "fp32" && dtype != "bf16") {
    std::fprintf(stderr, "bench_generate: --dtype must be fp32 or bf16, got '%s'\n", dtype.c_str());
    return 2;
  }
  const bool bf16 = dtype == "bf16";
  if (bf16) std::printf("bf16 kernel: %s\n", kernels::bf16_path_name(kernels::bf16_path()));
  g_bandwidth = read_bandwidth();
  std::printf("read bandwidth (parallel sum over 1 GiB): %.1f GB/s\n", g_bandwidth / 1e9);
  size_t begin = presets == "none" ? presets.size() + 1 : 0;  // --presets none: the GEMM table only
  while (begin <= presets.size()) {
    const size_t comma = presets.find(',', begin);
    bench_preset(presets.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin), new_tokens, reps, bf16);
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
  bench_gemm(reps * 10);
  return 0;
}
