// Distributions for one decoding position (the contract is in sampling.h).
#include "hydra/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/error.h"
#include "tensor/parallel.h"

namespace hydra {

namespace {

// log Σ_i exp(x_i / T) over i < n, in float64 (the max is taken out first).
double log_sum_exp(const float* x, int64_t n, double inv_t) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t i = 0; i < n; ++i) m = std::max(m, static_cast<double>(x[i]) * inv_t);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::exp(static_cast<double>(x[i]) * inv_t - m);
  return m + std::log(s);
}

// The exp and log over a vocabulary run on every thread: one id's value does not depend on which thread
// computes it, and the sums over them stay in id order on one thread, so the bits are those of one loop.
// On one core libm's exp or log of 4096 values takes ~20 µs and of gpt2's 50304 ~250 µs, while the other
// cores wait for the next token.
constexpr int64_t kGrainTranscendental = 2048;

// probs = softmax(probs) in place (the values are log-probabilities up to a constant).
void softmax_in_place(std::vector<double>& probs) {
  double m = -std::numeric_limits<double>::infinity();
  for (double v : probs) m = std::max(m, v);
  parallel_for(0, static_cast<int64_t>(probs.size()), kGrainTranscendental, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) probs[i] = std::exp(probs[i] - m);
  });
  double s = 0;
  for (double v : probs) s += v;
  const double inv = 1.0 / s;
  for (double& v : probs) v *= inv;
}

void normalise(std::vector<double>& probs) {
  double s = 0;
  for (double v : probs) s += v;
  const double inv = 1.0 / s;
  for (double& v : probs) v *= inv;
}

}  // namespace

void combine_distribution(Combine how, std::span<const float* const> head_logits, std::span<const double> beta,
                          int64_t n, double temperature, std::vector<double>& probs) {
  HYDRA_CHECK(!head_logits.empty() && n >= 1, "combine_distribution: needs at least one head and one id (got ",
              head_logits.size(), " heads, ", n, " ids)");
  HYDRA_CHECK(temperature > 0 && std::isfinite(temperature), "combine_distribution: temperature ", temperature,
              " must be > 0 (greedy decoding takes the argmax at temperature 1)");
  HYDRA_CHECK(how == Combine::Mean || beta.size() == head_logits.size(), "combine_distribution: ", beta.size(),
              " weights for ", head_logits.size(), " heads");
  const double inv_t = 1.0 / temperature;
  const size_t H = head_logits.size();
  probs.assign(static_cast<size_t>(n), 0.0);
  if (how == Combine::Mean) {
    // z_i = mean_h(logits_h,i) / T; the sum runs in head order.
    for (const float* x : head_logits)
      for (int64_t i = 0; i < n; ++i) probs[i] += static_cast<double>(x[i]);
    const double scale = inv_t / static_cast<double>(H);
    for (double& v : probs) v *= scale;
  } else {
    // s_i = Σ_h β_h · (logits_h,i / T - lse_h): log_softmax over the ids that may be generated. Over
    // the full vocabulary each head's lse would differ by a constant, which the final softmax removes.
    for (size_t h = 0; h < H; ++h) {
      const float* x = head_logits[h];
      const double lse = log_sum_exp(x, n, inv_t);
      for (int64_t i = 0; i < n; ++i) probs[i] += beta[h] * (static_cast<double>(x[i]) * inv_t - lse);
    }
  }
  softmax_in_place(probs);
}

void truncate_top_k_top_p(std::vector<double>& probs, int64_t top_k, double top_p, std::vector<int64_t>& order) {
  const int64_t n = static_cast<int64_t>(probs.size());
  const bool cut_k = top_k > 0 && top_k < n, cut_p = top_p < 1.0;
  if (!cut_k && !cut_p) return;
  // More probable first; the lower id first among equals.
  auto before = [&probs](int64_t a, int64_t b) { return probs[a] > probs[b] || (probs[a] == probs[b] && a < b); };
  order.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  int64_t kept = n;
  if (cut_k) {
    std::nth_element(order.begin(), order.begin() + top_k, order.end(), before);
    kept = top_k;
  }
  if (cut_p) {
    std::sort(order.begin(), order.begin() + kept, before);
    double total = 0;
    for (int64_t r = 0; r < kept; ++r) total += probs[order[r]];
    // The smallest prefix whose share of the kept mass reaches top_p.
    double cumulative = 0;
    int64_t r = 0;
    while (r < kept) {
      cumulative += probs[order[r++]];
      if (cumulative >= top_p * total) break;
    }
    kept = r;
  }
  for (int64_t r = kept; r < n; ++r) probs[order[r]] = 0.0;
  normalise(probs);
}

int64_t argmax(std::span<const double> values) {
  HYDRA_CHECK(!values.empty(), "argmax: no values");
  int64_t best = 0;
  for (size_t i = 1; i < values.size(); ++i)
    if (values[i] > values[best]) best = static_cast<int64_t>(i);
  return best;
}

int64_t argmax(const float* logits, int64_t n) {
  HYDRA_CHECK(n >= 1, "argmax: no values");
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  return best;
}

int64_t sample_index(std::span<const double> probs, double u) {
  double total = 0;
  for (double p : probs) total += p;
  HYDRA_CHECK(total > 0, "sample_index: the distribution has no mass");
  const double target = u * total;
  double cumulative = 0;
  int64_t last = -1;  // the last id with mass: where rounding in the sum lands a u close to 1
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0) continue;
    cumulative += probs[i];
    last = static_cast<int64_t>(i);
    if (target < cumulative) return last;
  }
  return last;
}

double residual_distribution(std::span<const double> p, std::span<const double> q, std::vector<double>& out) {
  HYDRA_CHECK(p.size() == q.size(), "residual_distribution: p has ", p.size(), " ids, q ", q.size());
  out.assign(p.size(), 0.0);
  double mass = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    out[i] = std::max(p[i] - q[i], 0.0);
    mass += out[i];
  }
  if (mass > 0)
    for (double& v : out) v /= mass;
  return mass;
}

double entropy(std::span<const double> probs) {
  // Blocks of log p on every thread (kGrainTranscendental above), then each block's terms summed in order.
  constexpr int64_t kBlock = 8192;
  double logs[kBlock];
  double h = 0;
  const int64_t n = static_cast<int64_t>(probs.size());
  for (int64_t b0 = 0; b0 < n; b0 += kBlock) {
    const int64_t count = std::min(kBlock, n - b0);
    parallel_for(0, count, kGrainTranscendental, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) logs[i] = probs[b0 + i] > 0 ? std::log(probs[b0 + i]) : 0.0;
    });
    // h - p·log p with one rounding, as the compiler fuses the one-loop form `h -= p * std::log(p)` (here
    // it would otherwise vectorize the products on their own and round twice).
    for (int64_t i = 0; i < count; ++i)
      if (probs[b0 + i] > 0) h = std::fma(-probs[b0 + i], logs[i], h);
  }
  return h;
}

double top_two_margin(std::span<const double> probs) {
  double first = 0, second = 0;
  for (double p : probs) {
    if (p > first) {
      second = first;
      first = p;
    } else if (p > second) {
      second = p;
    }
  }
  return first - second;
}

int64_t vote_margin(std::span<const int64_t> head_argmax, int64_t token) {
  int64_t agree = 0, best_other = 0;
  for (size_t i = 0; i < head_argmax.size(); ++i) {
    const int64_t id = head_argmax[i];
    if (id == token) {
      ++agree;
      continue;
    }
    // Count each other id once, at its first occurrence.
    bool seen = false;
    for (size_t j = 0; j < i && !seen; ++j) seen = head_argmax[j] == id;
    if (seen) continue;
    int64_t votes = 0;
    for (int64_t other : head_argmax) votes += other == id;
    best_other = std::max(best_other, votes);
  }
  return agree - best_other;
}

double uniform01(const Generator& gen, uint64_t index, uint64_t lane) {
  return static_cast<double>(gen.bits(index, lane) >> 11) * 0x1.0p-53;
}

}  // namespace hydra
