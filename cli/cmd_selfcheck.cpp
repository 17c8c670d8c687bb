// `hydra selfcheck`: proves the tensor library and the autograd engine work end to end, in seconds,
// by fitting a tiny model and checking that its loss falls. It is the main job of scripts/run.sh until
// the real model and `hydra train` land.
//
// The task is synthetic next-token prediction: tokens t are drawn uniformly from [0, V) and the next
// token is the fixed permutation next(t) = (5 t + 3) mod V, so a model that learns it drives the loss
// from ~ln V towards 0. The model is an embedding followed by a two-layer MLP:
//
//   x      = E[t]                  // shape: (N, C)  index_select: the embedding lookup
//   h      = silu(x @ W1)          // shape: (N, F)
//   logits = h @ W2                // shape: (N, V)
//   loss   = cross_entropy(logits, next(t))
//
// trained with plain SGD (p -= lr * dp). Every op on that path has a hand-written backward, so a
// falling loss exercises index_select's scatter-add, matmul's two transposed GEMMs, silu, the fused
// cross-entropy and the engine's graph walk together. It deliberately checks only that the loss falls:
// per-op correctness is the unit tests' job (tests/).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <vector>

#include "autograd/ops.h"
#include "cli/command.h"
#include "nn/cross_entropy.h"
#include "tensor/elementwise.h"
#include "tensor/parallel.h"

namespace hydra::cli {

namespace {

struct SelfcheckOptions {
  int steps = 100;
  uint64_t seed = 1234;
};

// The model's sizes (V vocab, C = d_model, F ffn hidden) and the training set-up.
constexpr int64_t kVocab = 32;
constexpr int64_t kDModel = 32;
constexpr int64_t kHidden = 64;
constexpr int64_t kTokensPerStep = 512;
constexpr double kLearningRate = 1.0;
// Pass when the last step's loss is below this fraction of the first step's.
constexpr double kRequiredDrop = 0.5;

// The rule the model has to learn: next(t) = (5 t + 3) mod V, a permutation because gcd(5, V) = 1.
Tensor next_tokens(const Tensor& tokens) {
  std::vector<int64_t> next = tokens.to_vector<int64_t>();
  for (int64_t& t : next) t = (5 * t + 3) % kVocab;
  return from_vector(next, tokens.shape());
}

// p -= lr * dp for every parameter, in place in the parameter's storage, then drop the gradients.
void sgd_step(const std::vector<Tensor>& params, double lr) {
  NoGradGuard no_grad;  // the update is not part of the model: record nothing
  for (const Tensor& p : params) {
    kernels::add_into(p, mul_scalar(p.grad(), -lr));
    p.zero_grad();
  }
}

int run_selfcheck(const SelfcheckOptions& opt) {
  Generator gen(opt.seed);
  // Scaled so every layer's output starts with roughly unit variance (x ~ N(0,1), W ~ N(0, 1/fan_in)).
  Tensor embedding = gen.normal({kVocab, kDModel}, 0.0, 1.0).set_requires_grad();                  // (V, C)
  Tensor w1 = gen.normal({kDModel, kHidden}, 0.0, 1.0 / std::sqrt(double(kDModel))).set_requires_grad();  // (C, F)
  Tensor w2 = gen.normal({kHidden, kVocab}, 0.0, 1.0 / std::sqrt(double(kHidden))).set_requires_grad();   // (F, V)
  const std::vector<Tensor> params = {embedding, w1, w2};

  std::printf("hydra selfcheck: embedding + 2-layer MLP (V=%lld, C=%lld, F=%lld), %lld tokens/step, "
              "SGD lr %.2g, %d steps, seed %llu, threads: %d\n",
              static_cast<long long>(kVocab), static_cast<long long>(kDModel), static_cast<long long>(kHidden),
              static_cast<long long>(kTokensPerStep), kLearningRate, opt.steps,
              static_cast<unsigned long long>(opt.seed), num_threads());

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const int log_every = opt.steps <= 20 ? 1 : opt.steps / 10;
  double first_loss = 0, last_loss = 0;
  for (int step = 1; step <= opt.steps; ++step) {
    const auto step_start = Clock::now();
    Tensor tokens = gen.randint({kTokensPerStep}, 0, kVocab);  // shape: (N,)
    Tensor targets = next_tokens(tokens);                        // shape: (N,)

    Tensor x = index_select(embedding, 0, tokens);  // shape: (N, C)
    Tensor h = silu(matmul(x, w1));                 // shape: (N, F)
    Tensor logits = matmul(h, w2);                  // shape: (N, V)
    Tensor loss = cross_entropy(logits, targets);   // shape: ()
    loss.backward();
    sgd_step(params, kLearningRate);

    last_loss = loss.item<double>();
    if (step == 1) first_loss = last_loss;
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - step_start).count();
    if (step == 1 || step % log_every == 0 || step == opt.steps || !std::isfinite(last_loss))
      std::printf("step %4d/%d  loss %.4f  time %.2f ms\n", step, opt.steps, last_loss, ms);
    std::fflush(stdout);
    if (!std::isfinite(last_loss)) {
      std::fprintf(stderr, "hydra: selfcheck failed: the loss became %f at step %d\n", last_loss, step);
      return 1;
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();

  if (!(last_loss < kRequiredDrop * first_loss)) {
    std::fprintf(stderr,
                 "hydra: selfcheck failed: the loss did not fall enough: %.4f -> %.4f after %d steps "
                 "(need below %.2f x the first step's loss)\n",
                 first_loss, last_loss, opt.steps, kRequiredDrop);
    return 1;
  }
  std::printf("selfcheck passed: loss %.4f -> %.4f in %d steps (%.2f s)\n", first_loss, last_loss, opt.steps,
              seconds);
  return 0;
}

}  // namespace

Command add_selfcheck_command(CLI::App& hydra) {
  CLI::App* app = hydra.add_subcommand(
      "selfcheck", "Fit a tiny model built from the autograd ops and check that its loss falls");
  // Options are bound to a heap object that outlives parsing: `run` reads them afterwards.
  auto opt = std::make_shared<SelfcheckOptions>();
  app->add_option("--steps", opt->steps, "Training steps (1-1000000)")
      ->check(integer_in_range(1, 1000000))
      ->capture_default_str();
  app->add_option("--seed", opt->seed, "Seed for the weights and the data")->capture_default_str();
  return {app, [opt] { return run_selfcheck(*opt); }};
}

}  // namespace hydra::cli
