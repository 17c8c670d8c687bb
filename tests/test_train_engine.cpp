// The training engine's parts on their own: the learning-rate schedules, AdamW and SGD against the
// formulas computed in double, clipping, which parameters decay, the gradient slab, the computed
// shuffle, token windows across files, shards, data streams, SFT rows, and the token-weighted loss.
#include <doctest/doctest.h>

#include <cmath>
#include <numbers>
#include <set>

#include "autograd/ops.h"
#include "hydra/loss.h"
#include "io/tokenizer.h"
#include "nn/cross_entropy.h"
#include "nn/linear.h"
#include "support/fixtures.h"
#include "support/small_model.h"
#include "support/temp_dir.h"
#include "train/data.h"
#include "train/gradient_buckets.h"
#include "train/optimizer.h"
#include "train/permutation.h"
#include "train/schedule.h"
#include "train/sft_data.h"
#include "train/trainable.h"

using namespace hydra;
using namespace hydra::train;
using hydra::test::TempDir;

namespace {

// A module with one matrix, one vector and an "embeddings" matrix: what decays and what does not.
class Toy : public nn::Module {
 public:
  Toy() {
    register_parameter("embeddings.weight", emb, {3, 2});
    register_parameter("w.weight", w, {2, 3});
    register_parameter("norm.weight", norm, {3});
    slab = nn::materialize_parameters(*this);
    set_trainable("*", true);
  }
  Tensor emb, w, norm;
  std::shared_ptr<Storage> slab;
};

void fill(Tensor& t, std::vector<float> values) {
  std::copy(values.begin(), values.end(), t.data<float>());
}

// Raw uint16 token file with the given ids.
std::string write_tokens(const TempDir& dir, const std::string& name, const std::vector<uint16_t>& ids) {
  return dir.write(name, std::string(reinterpret_cast<const char*>(ids.data()), ids.size() * 2));
}

std::vector<uint16_t> iota_ids(int n, int start = 0) {
  std::vector<uint16_t> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = static_cast<uint16_t>(start + i);
  return ids;
}

}  // namespace

TEST_CASE("schedules: warm-up, then constant, cosine and linear decay to min at the last step") {
  LrSchedule s{ScheduleKind::Cosine, 1.0, 4, 14, 0.1};
  CHECK(s.lr_at(1) == doctest::Approx(0.25));
  CHECK(s.lr_at(4) == 1.0);
  // s = 9: halfway through the 10 decay steps: min + (peak - min) / 2.
  CHECK(s.lr_at(9) == doctest::Approx(0.1 + 0.9 * 0.5 * (1 + std::cos(std::numbers::pi * 0.5))).epsilon(1e-15));
  CHECK(s.lr_at(14) == doctest::Approx(0.1).epsilon(1e-15));
  CHECK(s.lr_at(20) == doctest::Approx(0.1).epsilon(1e-15));  // past the end: min
  s.kind = ScheduleKind::Linear;
  CHECK(s.lr_at(9) == doctest::Approx(1.0 - 0.9 * 0.5).epsilon(1e-15));
  CHECK(s.lr_at(14) == doctest::Approx(0.1).epsilon(1e-15));
  s.kind = ScheduleKind::Constant;
  CHECK(s.lr_at(13) == 1.0);
  LrSchedule no_warmup{ScheduleKind::Cosine, 2.0, 0, 3, 0.0};
  CHECK(no_warmup.lr_at(1) == doctest::Approx(2.0 * 0.5 * (1 + std::cos(std::numbers::pi / 3))));
  // Validation names the problem.
  CHECK_THROWS_WITH_AS((LrSchedule{ScheduleKind::Cosine, 1.0, 5, 4, 0.1}.validate()),
                       doctest::Contains("warm-up steps must be from 0 to the 4 total steps"), Error);
  CHECK_THROWS_WITH_AS((LrSchedule{ScheduleKind::Cosine, 0.0, 0, 4, 0.1}.validate()),
                       doctest::Contains("learning rate"), Error);
  CHECK_THROWS_WITH_AS(parse_schedule_kind("exp"), doctest::Contains("expected constant, cosine or linear"), Error);
  CHECK(LrSchedule::from_json(s.to_json()).to_json() == s.to_json());
}

TEST_CASE("weight decay: 2-D weight matrices only, never embeddings or norms") {
  Toy toy;
  TrainableParameters params(toy);
  REQUIRE(params.list().size() == 3);
  CHECK_FALSE(params.list()[0].weight_decay);  // embeddings.weight
  CHECK(params.list()[1].weight_decay);        // w.weight
  CHECK_FALSE(params.list()[2].weight_decay);  // norm.weight
  CHECK(params.numel() == 6 + 6 + 3);
  // Each gradient is a 64-byte aligned view of one slab, bound as the parameter's .grad.
  for (const TrainableParameter& p : params.list()) {
    CHECK(p.slab_offset % 16 == 0);
    CHECK(p.param.grad().impl() == p.grad.impl());
  }
}

TEST_CASE("AdamW: PyTorch's update, computed here in double for three steps") {
  Toy toy;
  fill(toy.emb, {0.5f, -1.0f, 0.25f, 2.0f, -0.75f, 1.5f});
  fill(toy.w, {1.0f, -2.0f, 0.5f, 0.125f, -0.5f, 3.0f});
  fill(toy.norm, {1.0f, 0.9f, 1.1f});
  TrainableParameters params(toy);
  OptimizerOptions o;  // beta (0.9, 0.95), eps 1e-8, weight decay 0.1
  Optimizer opt(o, params);
  const std::vector<std::vector<float>> grads = {{0.1f, -0.2f, 0.3f, 0.0f, 1e-9f, -5.0f}, {0.2f, 0.1f, -0.3f, 0.4f, 0.5f, -0.6f}};
  const double lrs[3] = {1e-2, 5e-3, 2e-2};
  // The reference in double, element by element.
  std::vector<std::vector<double>> p(3), m(3), v(3);
  for (size_t i = 0; i < 3; ++i) {
    std::vector<float> now = params.list()[i].param.to_vector<float>();
    p[i].assign(now.begin(), now.end());
    m[i].assign(now.size(), 0.0);
    v[i].assign(now.size(), 0.0);
  }
  for (int t = 1; t <= 3; ++t) {
    for (size_t i = 0; i < 3; ++i) {
      std::vector<float> g(params.list()[i].param.numel());
      for (size_t j = 0; j < g.size(); ++j) g[j] = grads[(i + t) % 2][j % 6] * static_cast<float>(t);
      fill(const_cast<Tensor&>(params.list()[i].grad), g);
      const double wd = params.list()[i].weight_decay ? o.weight_decay : 0.0;
      for (size_t j = 0; j < g.size(); ++j) {
        p[i][j] *= 1 - lrs[t - 1] * wd;
        m[i][j] = o.beta1 * m[i][j] + (1 - o.beta1) * g[j];
        v[i][j] = o.beta2 * v[i][j] + (1 - o.beta2) * g[j] * g[j];
        const double mhat = m[i][j] / (1 - std::pow(o.beta1, t)), vhat = v[i][j] / (1 - std::pow(o.beta2, t));
        p[i][j] -= lrs[t - 1] * mhat / (std::sqrt(vhat) + o.eps);
      }
    }
    opt.step(lrs[t - 1]);
  }
  CHECK(opt.steps_taken() == 3);
  for (size_t i = 0; i < 3; ++i) {
    const std::vector<float> got = params.list()[i].param.to_vector<float>();
    for (size_t j = 0; j < got.size(); ++j) {
      INFO(params.list()[i].name << "[" << j << "]");
      CHECK(got[j] == doctest::Approx(p[i][j]).epsilon(1e-6));
    }
  }
  // The state round-trips through a checkpoint's training state and is checked on the way in.
  TrainingState st;
  opt.save_state(st);
  CHECK(st.optimizer_tensors.size() == 6);
  CHECK(st.optimizer_tensors.count("exp_avg_sq.w.weight") == 1);
  Optimizer again(o, params);
  again.load_state(st);
  CHECK(again.steps_taken() == 3);
  OptimizerOptions other = o;
  other.beta2 = 0.999;
  Optimizer mismatched(other, params);
  CHECK_THROWS_WITH_AS(mismatched.load_state(st), doctest::Contains("differs from this run's"), Error);
  st.optimizer_tensors.erase("exp_avg.norm.weight");
  CHECK_THROWS_WITH_AS(again.load_state(st), doctest::Contains("no optimizer tensor 'exp_avg.norm.weight'"), Error);
}

TEST_CASE("SGD: momentum buffer starts as the first gradient, coupled weight decay on matrices") {
  Toy toy;
  fill(toy.w, {1.0f, -2.0f, 0.5f, 0.125f, -0.5f, 3.0f});
  TrainableParameters params(toy);
  OptimizerOptions o;
  o.kind = OptimizerKind::SGD;
  o.momentum = 0.9;
  o.weight_decay = 0.01;
  Optimizer opt(o, params);
  const TrainableParameter& w = params.list()[1];
  std::vector<double> p = {1.0, -2.0, 0.5, 0.125, -0.5, 3.0}, buf(6, 0.0);
  for (int t = 1; t <= 3; ++t) {
    std::vector<float> g = {0.1f * t, -0.2f, 0.3f, 0.0f, 0.05f, -1.0f};
    fill(const_cast<Tensor&>(w.grad), g);
    for (size_t j = 0; j < 6; ++j) {
      const double d = g[j] + 0.01 * p[j];
      buf[j] = t == 1 ? d : 0.9 * buf[j] + d;
      p[j] -= 0.1 * buf[j];
    }
    opt.step(0.1);
  }
  const std::vector<float> got = w.param.to_vector<float>();
  for (size_t j = 0; j < 6; ++j) CHECK(got[j] == doctest::Approx(p[j]).epsilon(1e-6));
}

TEST_CASE("gradient slab: zero_grad, norm, scaling, the first non-finite gradient") {
  Toy toy;
  TrainableParameters params(toy);
  fill(const_cast<Tensor&>(params.list()[1].grad), {3, 0, 0, 0, 0, 0});
  fill(const_cast<Tensor&>(params.list()[2].grad), {0, 4, 0});
  CHECK(params.grad_norm() == 5.0);
  params.scale_grad(0.5f);
  CHECK(params.grad_norm() == 2.5);
  CHECK(params.first_non_finite_grad().empty());
  fill(const_cast<Tensor&>(params.list()[2].grad), {0, NAN, 0});
  fill(const_cast<Tensor&>(params.list()[1].grad), {INFINITY, 0, 0, 0, 0, 0});
  CHECK(params.first_non_finite_grad() == "w.weight");
  params.zero_grad();
  CHECK(params.grad_norm() == 0.0);
  // Backward accumulates into the slab in place.
  Tensor loss = sum(mul(toy.w, toy.w));
  loss.backward();
  CHECK(toy.w.grad().impl() == params.list()[1].grad.impl());
  // A model with nothing trainable is refused.
  Toy frozen;
  frozen.set_trainable("*", false);
  CHECK_THROWS_WITH_AS(TrainableParameters{frozen}, doctest::Contains("nothing to train"), Error);
}

TEST_CASE("RandomPermutation: a bijection of [0, n) that depends on the seed") {
  for (uint64_t n : {1u, 2u, 3u, 7u, 64u, 100u, 1000u, 4097u}) {
    RandomPermutation perm(n, 42);
    std::set<uint64_t> seen;
    for (uint64_t i = 0; i < n; ++i) seen.insert(perm(i));
    CHECK(seen.size() == n);
    CHECK(*seen.rbegin() == n - 1);
  }
  RandomPermutation a(1000, 1), b(1000, 2);
  int same = 0, fixed_points = 0;
  for (uint64_t i = 0; i < 1000; ++i) {
    same += a(i) == b(i);
    fixed_points += a(i) == i;
  }
  CHECK(same < 20);          // two seeds, two orders
  CHECK(fixed_points < 20);  // and not the identity
}

TEST_CASE("token windows: stride, file boundaries, max tokens, describe") {
  TempDir dir("windows");
  io::TokenFileOptions to;
  to.vocab_size = 1000;
  std::vector<io::TokenFile> files = {io::open_token_file(write_tokens(dir, "a.bin", iota_ids(10)), to),
                                      io::open_token_file(write_tokens(dir, "b.bin", iota_ids(5, 100)), to),
                                      io::open_token_file(write_tokens(dir, "c.bin", iota_ids(7, 200)), to)};
  // T = 3, stride 3: a (10 ids) has windows at 0, 3, 6; b (5 ids) at 0; c (7 ids) at 0, 3.
  TokenWindows w(files, 3, 3);
  CHECK(w.size() == 6);
  CHECK(w.tokens() == 22);
  Batch b = w.make_batch({0, 2, 3, 5});
  CHECK(b.inputs.to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 6, 7, 8, 100, 101, 102, 203, 204, 205});
  CHECK(b.targets.to_vector<int64_t>() == std::vector<int64_t>{1, 2, 3, 7, 8, 9, 101, 102, 103, 204, 205, 206});
  // Stride T + 1: non-overlapping windows.
  TokenWindows disjoint(files, 3, 4);
  CHECK(disjoint.size() == 2 + 1 + 1);
  CHECK(disjoint.make_batch({1}).inputs.to_vector<int64_t>() == std::vector<int64_t>{4, 5, 6});
  // The first 12 tokens only: a whole, and 2 ids of b (no window there).
  TokenWindows first(files, 3, 3, 12);
  CHECK(first.size() == 3);
  CHECK(first.tokens() == 12);
  CHECK_THROWS_WITH_AS(TokenWindows(files, 10, 10), doctest::Contains("holds no window of 11 ids"), Error);
}

TEST_CASE("shards: N contiguous parts, the first n mod N one longer") {
  CHECK(shard_range(10, 3, 0) == std::pair<int64_t, int64_t>{0, 4});
  CHECK(shard_range(10, 3, 1) == std::pair<int64_t, int64_t>{4, 7});
  CHECK(shard_range(10, 3, 2) == std::pair<int64_t, int64_t>{7, 10});
  CHECK(shard_range(9, 3, 2) == std::pair<int64_t, int64_t>{6, 9});
}

TEST_CASE("data streams: sequential reads ((s*B)+b)*T, shuffle is a new permutation each epoch") {
  TempDir dir("streams");
  io::TokenFileOptions to;
  to.vocab_size = 1000;
  auto data = std::make_shared<TokenWindows>(
      std::vector<io::TokenFile>{io::open_token_file(write_tokens(dir, "a.bin", iota_ids(41)), to)}, 4, 4);
  REQUIRE(data->size() == 10);
  DataStream seq(data, 0, 10, DataOrder::Sequential, 0);
  for (int s = 0; s < 4; ++s) {
    Batch b = seq.next(3);
    for (int r = 0; r < 3; ++r)  // sequence b of micro-batch s starts at ((s*B)+b)*T, wrapping
      CHECK(b.inputs.to_vector<int64_t>()[r * 4] == ((s * 3 + r) % 10) * 4);
  }
  CHECK(seq.cursor() == 12);
  CHECK(seq.epoch() == 1);

  DataStream shuf(data, 2, 8, DataOrder::Shuffle, 7);  // a shard: items 2..7
  std::vector<int64_t> e0 = shuf.peek(6);
  std::set<int64_t> seen(e0.begin(), e0.end());
  CHECK(seen == std::set<int64_t>{2, 3, 4, 5, 6, 7});
  shuf.next(6);
  std::vector<int64_t> e1 = shuf.peek(6);
  CHECK(std::set<int64_t>(e1.begin(), e1.end()) == seen);
  CHECK(e0 != e1);  // a new order in epoch 1
  // The whole state is the cursor: a fresh stream restored from it reads the same items.
  DataStream again(data, 2, 8, DataOrder::Shuffle, 7);
  again.restore(shuf.state(), "test");
  CHECK(again.peek(6) == e1);
  DataStream other_split(data, 0, 8, DataOrder::Shuffle, 7);
  CHECK_THROWS_WITH_AS(other_split.restore(shuf.state(), "head0"), doctest::Contains("head0: the checkpoint's begin is 2"),
                       Error);
}

TEST_CASE("SFT rows: answer-only targets, right padding, truncation, errors naming the line") {
  TempDir dir("sft");
  const io::Tokenizer tok = io::Tokenizer::load(hydra::test::fixture_path("tokenizer/tiny.tokenizer.json"));
  SftOptions o;
  o.seq = 7;
  const std::string path = dir.write("a.jsonl", "{\"prompt\": \"1+2=\", \"answer\": \"3\", \"id\": 7}\n\n"
                                                "{\"prompt\": \"10+20=\", \"answer\": \"30\"}\n");
  auto data = SftDataset::load(path, tok, o, 300);
  REQUIRE(data->size() == 2);
  CHECK(data->rows()[0].prompt_length == 4);
  CHECK(data->rows()[1].line == 3);
  Batch b = data->make_batch({0, 1});
  // Row 0: "1+2=3" -> 5 ids, 4 positions, padded to row 1's 7 positions.
  const int64_t I = kIgnoreIndex;
  CHECK(b.inputs.shape() == Shape{2, 7});
  CHECK(b.inputs.to_vector<int64_t>() == std::vector<int64_t>{'1', '+', '2', '=', 0, 0, 0, '1', '0', '+', '2', '0', '=', '3'});
  CHECK(b.targets.to_vector<int64_t>() == std::vector<int64_t>{I, I, I, '3', I, I, I, I, I, I, I, I, '3', '0'});
  CHECK(count_targets(b.targets) == 3);
  // With the EOS appended, it is counted.
  o.append_eos = true;
  o.seq = 8;
  auto eos = SftDataset::load(path, tok, o, 300);
  CHECK(eos->rows()[0].ids.back() == 259);
  CHECK(count_targets(eos->make_batch({0}).targets) == 2);
  // Too long: an error naming the line, or the prompt cut from the left.
  o.append_eos = false;
  o.seq = 5;
  CHECK_THROWS_WITH_AS(SftDataset::load(path, tok, o, 300), doctest::Contains("a.jsonl:3: the row has 8 tokens"), Error);
  o.truncate_left = true;
  auto cut = SftDataset::load(path, tok, o, 300);
  CHECK(cut->rows()[1].ids == std::vector<int64_t>{'+', '2', '0', '=', '3', '0'});
  CHECK(cut->rows()[1].prompt_length == 4);
  // Malformed lines.
  auto rejects = [&](const std::string& text, const std::string& message) {
    INFO(text);
    CHECK_THROWS_WITH_AS(SftDataset::load(dir.write("bad.jsonl", text), tok, SftOptions{}, 300),
                         doctest::Contains(message.c_str()), Error);
  };
  rejects("{\"prompt\": \"1\"}\n", "bad.jsonl:1: no \"answer\" field");
  rejects("\n{\"prompt\": 1, \"answer\": \"2\"}\n", "bad.jsonl:2: \"prompt\" must be a string");
  rejects("{\"prompt\": \"1\", \"answer\": \"2\"\n", "bad.jsonl:1");
  rejects("[1, 2]\n", "expected a JSON object");
  rejects("{\"prompt\": \"1\", \"answer\": \"\"}\n", "the answer is empty");
  rejects("", "no prompt/answer rows");
  CHECK_THROWS_WITH_AS(SftDataset::load(path, tok, SftOptions{}, 50), doctest::Contains("outside the model's vocabulary"),
                       Error);
}

TEST_CASE("token-weighted loss over micro-batches is the big batch's, not the mean of means") {
  Generator gen(3);
  Tensor logits = gen.normal({2, 3, 5});  // (B, T, V): one batch of 2 rows
  Tensor targets = from_vector<int64_t>({1, kIgnoreIndex, kIgnoreIndex, 0, 4, 2}, {2, 3});
  const double whole = cross_entropy(logits, targets).item<double>();
  // Split into two micro-batches of one row: row 0 counts 1 target, row 1 counts 3.
  const double total = 4;
  const double shares = cross_entropy_share(select(logits, 0, 0), select(targets, 0, 0), total).item<double>() +
                        cross_entropy_share(select(logits, 0, 1), select(targets, 0, 1), total).item<double>();
  CHECK(shares == doctest::Approx(whole).epsilon(1e-6));
  const double mean_of_means = (cross_entropy(select(logits, 0, 0), select(targets, 0, 0)).item<double>() +
                                cross_entropy(select(logits, 0, 1), select(targets, 0, 1)).item<double>()) / 2;
  CHECK(std::abs(mean_of_means - whole) > 1e-3);  // the trap the trainer avoids
  // A micro-batch with no counted target adds an exact 0 and needs no backward.
  Tensor none = full({1, 3}, static_cast<double>(kIgnoreIndex), DType::Int64);
  Tensor z = cross_entropy_share(narrow(logits, 0, 0, 1), none, total);
  CHECK(z.item<double>() == 0.0);
  CHECK_FALSE(z.requires_grad());
  // hydra_loss: mean over heads of each head's mean, per-head targets allowed.
  Tensor l4 = gen.normal({3, 2, 3, 5});
  HydraLoss hl = hydra_loss(l4, targets);
  double mean = 0;
  for (int k = 0; k < 3; ++k) {
    const double ce = cross_entropy(select(l4, 0, k), targets).item<double>();
    CHECK(hl.head_losses[k] == doctest::Approx(ce).epsilon(1e-12));
    mean += ce / 3;
  }
  CHECK(hl.loss.item<double>() == doctest::Approx(mean).epsilon(1e-6));
  CHECK_THROWS_WITH_AS(hydra_loss(l4, from_vector<int64_t>({1, 2}, {2})), doctest::Contains("do not match logits of shape"),
                       Error);
}

namespace {

// One micro-batch as the trainer runs it: the trunk once, each head's fused loss and backward (from
// first_head on), then the trunk's backward from the gradient the heads sent back.
void trainer_like_backward(HydraTransformer& model, const Tensor& inputs, const Tensor& targets,
                           size_t first_head = 0) {
  Tensor h = model.forward_trunk(inputs);
  Tensor h_in = h.detach();
  h_in.set_requires_grad(true);
  for (size_t k = first_head; k < model.heads.size(); ++k)
    lm_head_loss_share(model.lm_head, model.heads[k]->forward(h_in), targets, 8.0).backward();
  h.backward(h_in.grad());
}

}  // namespace

TEST_CASE("gradient buckets: one per layer, each complete (and sent) before backward ends") {
  CHECK(bucket_key("trunk.blocks.3.attention.w_q.weight") == "trunk.blocks.3");
  CHECK(bucket_key("heads.1.blocks.0.feed_forward.w1.lora_a") == "heads.1.blocks.0");
  CHECK(bucket_key("trunk.embeddings.weight") == "trunk.embeddings");
  CHECK(bucket_key("lm_head.norm.weight") == "lm_head.norm");

  HydraTransformer model(test::small_hydra_config(16), "cpu", 5);
  TrainableParameters params(model);
  GradientBuckets buckets(params);
  // trunk.embeddings, trunk.blocks.0, heads.{0,1,2}.blocks.0, and the lm_head's norm and weight.
  CHECK(buckets.size() == 7);
  Generator gen(2);
  const Tensor inputs = from_vector<int64_t>({1, 2, 3, 4, 5, 6, 7, 8}, {2, 4});
  const Tensor targets = from_vector<int64_t>({2, 3, 4, 5, 6, 7, 8, 9}, {2, 4});
  const std::map<int64_t, int> every_head{{0, 1}, {1, 1}, {2, 1}};
  const std::vector<int> uses = uses_per_micro_batch(params, 1, every_head);

  // The counts are exact: every bucket starts during backward, none is left for finish().
  params.zero_grad();
  buckets.arm(uses, false);
  trainer_like_backward(model, inputs, targets);
  CHECK(buckets.started_early() == 7);
  buckets.finish();

  // The same gradients as a backward with nothing watching.
  std::vector<float> watched(params.grad_slab().begin(), params.grad_slab().end());
  params.zero_grad();
  trainer_like_backward(model, inputs, targets);
  CHECK(std::equal(watched.begin(), watched.end(), params.grad_slab().begin()));

  // The start order is fixed, whatever completes first: with head 0 not run (as for a micro-batch with
  // no counted target for it, on one rank only), nothing after it in the order starts early.
  params.zero_grad();
  buckets.arm(uses, false);
  trainer_like_backward(model, inputs, targets, /*first_head=*/1);
  CHECK(buckets.started_early() == 0);
  buckets.finish();

  // A wrong count is caught when the early-sent bucket receives another contribution: here the lm_head
  // is said to be used once, but three heads use it.
  params.zero_grad();
  buckets.arm(uses_per_micro_batch(params, 1, {{0, 1}}), false);
  CHECK_THROWS_WITH_AS(trainer_like_backward(model, inputs, targets),
                       doctest::Contains("after its bucket was sent"), InternalError);
  buckets.finish();

  // With stashed micro-batches, each bucket folds the stash in before it is sent: the result is
  // stash_grad + restore_stash's.
  params.zero_grad();
  trainer_like_backward(model, inputs, targets);
  params.stash_grad();
  trainer_like_backward(model, inputs, targets);
  params.stash_grad();
  params.restore_stash();
  std::vector<float> stashed(params.grad_slab().begin(), params.grad_slab().end());
  params.zero_grad();
  trainer_like_backward(model, inputs, targets);
  params.stash_grad();
  buckets.arm(uses, true);
  trainer_like_backward(model, inputs, targets);
  buckets.finish();
  CHECK(std::equal(stashed.begin(), stashed.end(), params.grad_slab().begin()));
}
