// Determinism: the same seeded computation gives bit-identical results with 1 and with 2 threads.
//
// Individual ops are checked in their own files; this runs a small end-to-end training loop through
// every kind of kernel (embedding gather, tiled GEMMs, elementwise, softmax, reductions, cross-entropy
// and all their backwards), with tensors large enough that each kernel really splits its work.
#include <doctest/doctest.h>

#include <cstring>

#include "autograd/ops.h"
#include "nn/cross_entropy.h"
#include "support/threads.h"

using namespace hydra;
using namespace hydra::test;

namespace {

struct Params {
  Tensor embed, w1, w2, scale;
};

Params init(uint64_t seed) {
  Generator gen(seed);
  Params p{gen.trunc_normal({512, 128}, 0, 0.02, -0.06, 0.06), gen.trunc_normal({128, 384}, 0, 0.02, -0.06, 0.06),
           gen.trunc_normal({384, 512}, 0, 0.02, -0.06, 0.06), ones({128})};
  for (Tensor* t : {&p.embed, &p.w1, &p.w2, &p.scale}) t->set_requires_grad();
  return p;
}

// Trains for a few SGD steps and returns the losses and every parameter.
std::vector<Tensor> train() {
  Params p = init(42);
  Generator data(7);
  std::vector<float> losses;
  // One fixed batch, so the loss must fall as the model memorises it.
  Tensor ids = data.randint({1024}, 0, 512);
  Tensor targets = data.randint({1024}, 0, 512);
  for (int step = 0; step < 3; ++step) {
    Tensor h = index_select(p.embed, 0, ids);                                  // shape: (1024, 128)
    // An RMSNorm-like path: x * rsqrt(mean(x², -1) + eps) * scale
    Tensor ms = mean(pow(h, 2.0), {-1}, /*keepdim=*/true);                     // shape: (1024, 1)
    h = mul(mul(h, broadcast_to(rsqrt(add_scalar(ms, 1e-6)), h.shape())), broadcast_to(p.scale, h.shape()));
    Tensor a = silu(matmul(h, p.w1));                                          // shape: (1024, 384)
    Tensor attn = softmax(matmul(a, transpose(a, 0, 1)), -1);                  // shape: (1024, 1024)
    a = add(a, matmul(attn, a));
    Tensor logits = matmul(a, p.w2);                                           // shape: (1024, 512)
    Tensor loss = add(cross_entropy(logits, targets), mul_scalar(sum(log_softmax(logits, 0)), 1e-6));
    loss.backward();
    losses.push_back(loss.item<float>());
    NoGradGuard no_grad;
    for (Tensor* t : {&p.embed, &p.w1, &p.w2, &p.scale}) {
      Tensor updated = sub(*t, mul_scalar(t->grad(), 0.5));
      std::memcpy(t->data<float>(), updated.data<float>(), sizeof(float) * t->numel());
      t->zero_grad();
    }
  }
  return {from_vector(losses, {static_cast<int64_t>(losses.size())}), p.embed.detach(), p.w1.detach(),
          p.w2.detach(), p.scale.detach()};
}

}  // namespace

TEST_CASE("a seeded training loop is bit-identical with 1 and 2 threads") {
  expect_thread_invariant(train, {"losses", "embed", "w1", "w2", "scale"});
  // Run again with 2 threads: the same bits (no state leaks from one run into the next).
  ScopedThreads two(2);
  const std::vector<Tensor> first = train(), again = train();
  for (size_t i = 0; i < first.size(); ++i) CHECK(bit_identical(first[i], again[i]));
  // The loop really trained (the comparisons are not between two untouched initialisations).
  const std::vector<float> losses = first[0].to_vector<float>();
  CHECK(losses[2] < losses[0]);
}

TEST_CASE("the generator's draws do not depend on the thread count") {
  expect_thread_invariant([] { return std::vector<Tensor>{Generator(5).trunc_normal({300000}, 0, 0.02, -0.06, 0.06)}; },
                          {"trunc_normal"});
}
