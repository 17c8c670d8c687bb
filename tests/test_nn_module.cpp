// Module (nn/module.h) and initialisation (nn/init.h), on a small tree built from the real layers:
// dotted names (nested modules and "blocks.N" lists), state dict round trip, strict load errors,
// set_trainable globs, parameter counts on meta modules, the one-slab materialization, meta tensors
// refusing data access, and init_normal_ / init_ones_.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>

#include "autograd/ops.h"
#include "nn/embedding.h"
#include "nn/feed_forward.h"
#include "nn/init.h"
#include "nn/lm_head.h"
#include "nn/rms_norm.h"
#include "tensor/copy.h"

using namespace hydra;
using namespace hydra::nn;

namespace {

// A block-shaped module: a norm and a feed-forward, registered in that order.
class Block : public Module {
 public:
  Block(int64_t d, int64_t f) : feed_forward_norm(d, 1e-6), feed_forward(d, f) {
    register_module("feed_forward_norm", feed_forward_norm);
    register_module("feed_forward", feed_forward);
  }
  RMSNorm feed_forward_norm;
  FeedForward feed_forward;
};

// embeddings, a list of blocks ("blocks.0", "blocks.1", ...) and an lm_head.
class Tiny : public Module {
 public:
  Tiny(int64_t vocab, int64_t d, int64_t f, int n_blocks) : embeddings(vocab, d), lm_head(d, vocab, 1e-6) {
    register_module("embeddings", embeddings);
    for (int i = 0; i < n_blocks; ++i) {
      blocks.push_back(std::make_unique<Block>(d, f));
      register_module("blocks." + std::to_string(i), *blocks.back());
    }
    register_module("lm_head", lm_head);
  }
  Embedding embeddings;
  std::vector<std::unique_ptr<Block>> blocks;
  LMHead lm_head;
};

// One more level: "trunk." in front of everything.
class Wrapped : public Module {
 public:
  Wrapped() : trunk(10, 4, 6, 2) { register_module("trunk", trunk); }
  Tiny trunk;
};

std::vector<std::string> names_of(const Module& m) {
  std::vector<std::string> out;
  for (auto& [name, t] : m.named_parameters()) out.push_back(name);
  return out;
}

std::string errors_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Distinct values in every parameter, so a round trip that mixes two up is caught.
void fill_distinct(Module& m, uint64_t seed) {
  Generator gen(seed);
  for (auto& [name, p] : m.named_parameters()) init_normal_(*p, gen, 1.0);
}

}  // namespace

TEST_CASE("parameters get OLMo-core's dotted names, depth-first in registration order") {
  Tiny m(10, 4, 6, 2);
  const std::vector<std::string> want = {
      "embeddings.weight",
      "blocks.0.feed_forward_norm.weight",
      "blocks.0.feed_forward.w1.weight",
      "blocks.0.feed_forward.w2.weight",
      "blocks.0.feed_forward.w3.weight",
      "blocks.1.feed_forward_norm.weight",
      "blocks.1.feed_forward.w1.weight",
      "blocks.1.feed_forward.w2.weight",
      "blocks.1.feed_forward.w3.weight",
      "lm_head.norm.weight",
      "lm_head.w_out.weight",
  };
  CHECK(names_of(m) == want);
  Wrapped w;
  std::vector<std::string> nested = names_of(w);
  REQUIRE(nested.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) CHECK(nested[i] == "trunk." + want[i]);
  // Shapes follow the layers' contracts.
  StateDict sd = m.state_dict();
  CHECK(sd.at("embeddings.weight").shape() == Shape{10, 4});
  CHECK(sd.at("blocks.1.feed_forward.w1.weight").shape() == Shape{6, 4});
  CHECK(sd.at("blocks.1.feed_forward.w2.weight").shape() == Shape{4, 6});
  CHECK(sd.at("lm_head.norm.weight").shape() == Shape{4});
  CHECK(sd.at("lm_head.w_out.weight").shape() == Shape{10, 4});
}

TEST_CASE("num_params works on meta modules, which allocate nothing and refuse data access") {
  // An OLMo-2 7B-sized feed-forward and lm_head: counted without allocating their 1.4 GB.
  FeedForward ff(4096, 11008);
  LMHead head(4096, 100352, 1e-6);
  CHECK(ff.num_params() == 3 * 4096 * 11008);
  CHECK(head.num_params() == 4096 + int64_t{100352} * 4096);
  Tiny m(10, 4, 6, 2);
  CHECK(m.num_params() == 10 * 4 + 2 * (4 + 3 * 4 * 6) + 4 + 10 * 4);
  for (auto& [name, p] : m.named_parameters()) CHECK(p->is_meta());
  std::string msg = errors_of([&] { ff.w1.weight.data<float>(); });
  CHECK_MESSAGE(contains(msg, "meta tensor of shape [11008, 4096]"), msg);
  CHECK_MESSAGE(contains(msg, "materialize"), msg);
  // A forward through a meta module fails the same way instead of reading garbage.
  msg = errors_of([&] { ff.forward(zeros({1, 2, 4096})); });
  CHECK_MESSAGE(contains(msg, "meta tensor"), msg);
}

TEST_CASE("materialize_parameters gives every parameter a zeroed, 64-byte aligned view of one slab") {
  Tiny m(10, 4, 6, 2);
  m.set_trainable("blocks.1.*", false);  // flags set on the meta tensors survive materialization
  std::shared_ptr<Storage> slab = materialize_parameters(m);
  auto params = m.named_parameters();
  const Tensor& first = *params.front().second;
  const char* base = static_cast<const char*>(slab->data);
  const char* previous_end = base;
  for (auto& named : params) {
    const std::string& name = named.first;
    Tensor* p = named.second;
    INFO(name);
    CHECK(!p->is_meta());
    CHECK(p->shares_storage_with(first));
    CHECK(p->is_contiguous());
    const char* data = static_cast<const char*>(p->raw_data());
    CHECK(reinterpret_cast<uintptr_t>(data) % 64 == 0);
    CHECK(data >= previous_end);  // laid out in order, never overlapping
    previous_end = data + p->numel() * sizeof(float);
    for (float v : p->to_vector<float>()) CHECK(v == 0.0f);
    CHECK(p->requires_grad() == !contains(name, "blocks.1."));
  }
  CHECK(previous_end <= base + slab->nbytes);
}

TEST_CASE("state_dict round trip: shares memory on the way out, copies on the way in") {
  Tiny a(10, 4, 6, 2), b(10, 4, 6, 2);
  materialize_parameters(a);
  materialize_parameters(b);
  fill_distinct(a, 1);
  StateDict sd = a.state_dict();
  CHECK(sd.size() == 11);
  CHECK(sd.at("lm_head.w_out.weight").shares_storage_with(a.lm_head.w_out.weight));
  b.load_state_dict(sd);
  for (auto& named : b.named_parameters()) {
    const std::string& name = named.first;
    Tensor* p = named.second;
    INFO(name);
    CHECK(p->to_vector<float>() == sd.at(name).to_vector<float>());
    CHECK(!p->shares_storage_with(sd.at(name)));
  }
  // Changing a's weights afterwards leaves b alone.
  init_ones_(a.embeddings.weight);
  CHECK(b.embeddings.weight.to_vector<float>() != a.embeddings.weight.to_vector<float>());
}

TEST_CASE("a strict load lists every missing, unexpected and wrongly-shaped name, and changes nothing") {
  Tiny a(10, 4, 6, 2), b(10, 4, 6, 2);
  materialize_parameters(a);
  materialize_parameters(b);
  fill_distinct(a, 2);
  fill_distinct(b, 3);
  const std::vector<float> before = b.lm_head.w_out.weight.to_vector<float>();
  StateDict sd = a.state_dict();
  sd.erase("blocks.0.feed_forward.w3.weight");
  sd.erase("lm_head.norm.weight");
  sd["blocks.2.feed_forward.w1.weight"] = zeros({6, 4});
  sd["blocks.1.feed_forward.w2.weight"] = zeros({6, 4});
  std::string msg = errors_of([&] { b.load_state_dict(sd); });
  CHECK_MESSAGE(contains(msg, "2 missing: blocks.0.feed_forward.w3.weight, lm_head.norm.weight"), msg);
  CHECK_MESSAGE(contains(msg, "1 unexpected: blocks.2.feed_forward.w1.weight"), msg);
  CHECK_MESSAGE(contains(msg, "blocks.1.feed_forward.w2.weight (expected [4, 6], got [6, 4])"), msg);
  CHECK(b.lm_head.w_out.weight.to_vector<float>() == before);
}

TEST_CASE("set_trainable by glob: '*' crosses dots, a pattern selects a subtree, no match is an error") {
  Tiny m(10, 4, 6, 2);
  materialize_parameters(m);
  for (auto& [name, p] : m.named_parameters()) CHECK(p->requires_grad());  // trainable from the start
  CHECK(m.set_trainable("*", false) == 11);
  for (auto& [name, p] : m.named_parameters()) CHECK(!p->requires_grad());
  CHECK(m.set_trainable("*", true) == 11);
  CHECK(m.set_trainable("blocks.0.*", false) == 4);
  CHECK(m.set_trainable("*.w1.*", false) == 2);
  for (auto& named : m.named_parameters()) {
    const std::string& name = named.first;
    Tensor* p = named.second;
    INFO(name);
    CHECK(p->requires_grad() == !(contains(name, "blocks.0.") || contains(name, ".w1.")));
  }
  // On a FeedForward alone the names are relative to it.
  FeedForward ff(4, 6);
  materialize_parameters(ff);
  CHECK(ff.set_trainable("w1.*", false) == 1);
  CHECK(!ff.w1.weight.requires_grad());
  CHECK(ff.w2.weight.requires_grad());
  std::string msg = errors_of([&] { m.set_trainable("trunk.*", true); });
  CHECK_MESSAGE(contains(msg, "'trunk.*' matches no parameter"), msg);
}

TEST_CASE("only trainable parameters receive gradients") {
  FeedForward ff(4, 6);
  materialize_parameters(ff);
  fill_distinct(ff, 4);
  ff.set_trainable("w2.*", false);
  Tensor y = ff.forward(Generator(5).normal({2, 3, 4}));
  y.backward(ones({2, 3, 4}));
  CHECK(ff.w1.weight.grad().defined());
  CHECK(ff.w3.weight.grad().defined());
  CHECK(!ff.w2.weight.grad().defined());
}

TEST_CASE("init_normal_ draws trunc_normal(0, std, ±3 std) in place, reproducibly; init_ones_") {
  Linear lin(256, 512);
  materialize_parameters(lin);
  lin.weight.set_requires_grad(true);  // in-place init must work on a trainable parameter
  const void* where = lin.weight.raw_data();
  Generator gen(0);
  init_normal_(lin.weight, gen, 0.02);
  CHECK(lin.weight.raw_data() == where);  // written in place, not rebound
  CHECK(lin.weight.is_leaf());
  CHECK(gen.offset() == 256 * 512);
  std::vector<float> v = lin.weight.to_vector<float>();
  double s = 0, s2 = 0, largest = 0;
  for (float e : v) {
    s += e;
    s2 += double(e) * e;
    largest = std::max(largest, std::abs(double(e)));
  }
  const double n = double(v.size()), mean = s / n, sd = std::sqrt(s2 / n - mean * mean);
  CHECK(largest <= 0.06);
  CHECK(largest > 0.055);  // 131072 draws reach close to the cut
  CHECK(std::abs(mean) < 3 * 0.02 / std::sqrt(n) * 2);
  // The standard deviation of a normal truncated at ±3σ is 0.98654 σ.
  CHECK(sd == doctest::Approx(0.02 * 0.98654).epsilon(0.01));
  // The same seed gives the same values; a generator that moved on gives others.
  Tensor again = zeros({512, 256});
  Generator gen2(0);
  init_normal_(again, gen2, 0.02);
  CHECK(again.to_vector<float>() == v);
  init_normal_(again, gen2, 0.02);
  CHECK(again.to_vector<float>() != v);

  RMSNorm norm(5, 1e-6);
  materialize_parameters(norm);
  init_ones_(norm.weight);
  CHECK(norm.weight.to_vector<float>() == std::vector<float>(5, 1.0f));

  FeedForward meta_ff(4, 6);
  std::string msg = errors_of([&] { init_normal_(meta_ff.w1.weight, gen, 0.02); });
  CHECK_MESSAGE((contains(msg, "init_normal_") && contains(msg, "meta") && contains(msg, "[6, 4]")), msg);
  msg = errors_of([&] { init_ones_(meta_ff.w1.weight); });
  CHECK_MESSAGE((contains(msg, "init_ones_") && contains(msg, "materialize_parameters")), msg);
  Tensor ids = zeros({3}, DType::Int64);
  CHECK(contains(errors_of([&] { init_ones_(ids); }), "int64"));
}
