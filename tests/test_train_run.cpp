// Whole training runs of a small Hydra through train::Trainer: resuming gives exactly the run that was
// never interrupted (shuffled data across epochs, grad accumulation, per-head data, shards), 1 and 2
// threads give the same bits, gradient accumulation equals the big batch, a frozen trunk stays
// bit-identical and runs no backward, checkpoints are kept and pruned as asked, a diverging run stops
// with the last checkpoint intact, and every bad resume is refused with the reason.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "autograd/grad_mode.h"
#include "hydra/model_dir.h"
#include "io/tokenizer.h"
#include "support/fixtures.h"
#include "support/small_model.h"
#include "support/temp_dir.h"
#include "support/threads.h"
#include "train/trainer.h"

using namespace hydra;
using namespace hydra::train;
using hydra::test::read_bytes;
using hydra::test::TempDir;
namespace fs = std::filesystem;

namespace {

HydraTransformerConfig small_config() { return hydra::test::small_hydra_config(64); }

// A model directory, two token files (a noisy walk, learnable) and an SFT file in one temp dir.
struct World {
  TempDir dir{"train-run"};
  std::string model, data, head_data, val, sft;
  World() {
    model = dir.file("model");
    save_model_dir(model, *small_config().build("cpu", 5));
    data = tokens("data.bin", 700, 1);
    head_data = tokens("head.bin", 300, 2);
    val = tokens("val.bin", 200, 3);
    std::string jsonl;
    for (int a = 0; a < 12; ++a)
      jsonl += "{\"prompt\": \"" + std::to_string(a) + "+" + std::to_string(a % 5) + "=\", \"answer\": \"" +
               std::to_string(a + a % 5) + "\"}\n";
    sft = dir.write("qa.jsonl", jsonl);
  }
  std::string tokens(const std::string& name, int n, uint32_t seed) {
    std::vector<uint16_t> ids(n);
    uint32_t x = seed;
    ids[0] = 0;
    for (int i = 1; i < n; ++i) {
      x = x * 1664525u + 1013904223u;
      ids[i] = static_cast<uint16_t>((x >> 28) < 12 ? (ids[i - 1] + 1) % 64 : (x >> 10) % 64);
    }
    return dir.write(name, std::string(reinterpret_cast<const char*>(ids.data()), ids.size() * 2));
  }
  TrainOptions options(const std::string& out) const {
    TrainOptions o;
    o.model_dir = model;
    o.out_dir = dir.file(out);
    o.data = {data};
    o.batch = 2;
    o.seq = 8;
    o.steps = 8;
    o.lr = 5e-3;
    o.warmup = 2;
    return o;
  }
};

struct Quiet : TrainObserver {};

// Simulates a crash: throws out of the run at a chosen instant.
struct Crash {};
struct CrashAt : TrainObserver {
  int64_t step, micro;
  CrashAt(int64_t s, int64_t m) : step(s), micro(m) {}
  void on_micro_batch(int64_t s, int64_t m) override {
    if (s == step && m == micro) throw Crash{};
  }
};

void check_same_bits(HydraTransformer& a, HydraTransformer& b) {
  auto pa = a.named_parameters(), pb = b.named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    INFO(pa[i].first);
    const std::vector<float> x = pa[i].second->to_vector<float>(), y = pb[i].second->to_vector<float>();
    REQUIRE(x.size() == y.size());
    CHECK(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
  }
}

// metrics.csv without the three timing columns (tokens_per_s, elapsed_s, communication_s), which differ
// run to run.
std::string losses_of(const std::string& metrics_csv) {
  std::istringstream in(read_bytes(metrics_csv));
  std::string line, out;
  while (std::getline(in, line)) {
    for (int cut = 0; cut < 3; ++cut) line = line.substr(0, line.rfind(','));
    out += line + "\n";
  }
  return out;
}

// Trains `o` to the end in one go, and again interrupted at (step, micro) then resumed; compares.
void check_resume(TrainOptions o, int64_t crash_step, int64_t crash_micro) {
  const std::string out = o.out_dir;
  o.out_dir = out + "-straight";
  Quiet quiet;
  Trainer straight(o);
  straight.run(quiet);

  o.out_dir = out + "-resumed";
  {
    Trainer first(o);
    CrashAt crash(crash_step, crash_micro);
    CHECK_THROWS_AS(first.run(crash), Crash);
  }
  o.resume = true;
  Trainer resumed(o);
  CHECK(resumed.steps_done() < crash_step);
  CHECK(resumed.steps_done() > 0);
  resumed.run(quiet);
  check_same_bits(straight.model(), resumed.model());
  CHECK(losses_of(out + "-straight/metrics.csv") == losses_of(out + "-resumed/metrics.csv"));
  CHECK(read_bytes(out + "-straight/model.safetensors") == read_bytes(out + "-resumed/model.safetensors"));
  if (!o.val.empty()) CHECK(read_bytes(out + "-straight/eval.csv") == read_bytes(out + "-resumed/eval.csv"));
}

}  // namespace

TEST_CASE("resume: shuffled data over several epochs, grad accumulation, per-head data, evals") {
  World w;
  TrainOptions o = w.options("a");
  o.data_order = DataOrder::Shuffle;
  o.grad_accum = 2;
  o.steps = 12;  // the head's 300 ids hold 33 windows of 9: several epochs of 4 per step
  o.head_data[1] = {w.head_data};
  o.val = {w.val};
  o.eval_every = 4;
  o.save_every = 3;
  check_resume(o, 8, 1);  // killed in the middle of step 8's accumulation: resumes from step 6
}

TEST_CASE("resume: shards per head, frozen trunk, sequential order, killed right after a checkpoint") {
  World w;
  TrainOptions o = w.options("b");
  o.data_order = DataOrder::Sequential;
  o.shard_by_head = true;
  o.freeze = {"trunk.*"};
  o.save_every = 2;
  check_resume(o, 5, 0);  // the first micro-batch of step 5: the checkpoint of step 4 is the latest
}

TEST_CASE("resume: SFT data with keep-best and early stopping state") {
  World w;
  TrainOptions o = w.options("c");
  o.data.clear();
  o.sft = w.sft;
  o.tokenizer = hydra::test::fixture_path("tokenizer/tiny.tokenizer.json");
  o.val = {w.sft};
  o.eval_every = 2;
  o.keep_best = true;
  o.keep = 1;
  o.save_every = 3;
  o.grad_accum = 2;
  check_resume(o, 7, 1);
}

TEST_CASE("resume: LoRA adapters with dropout (the dropout stream survives the checkpoint)") {
  World w;
  TrainOptions o = w.options("lora");
  nn::LoraConfig lora;
  lora.rank = 2;
  lora.dropout = 0.25;
  lora.targets = {"w1", "w2", "w3", "w_q"};
  o.lora = lora;
  o.train_heads = {0, 2};
  o.lr = 2e-2;
  o.save_every = 3;
  check_resume(o, 5, 0);
  // Only adapters trained: every base weight is as it started, and the adapters are in the files.
  auto start = load_model_dir(w.model);
  auto end = load_model_dir(w.dir.file("lora-straight"));
  auto base = start->state_dict();
  int64_t adapters = 0;
  for (auto& named : end->named_parameters()) {
    const std::string& name = named.first;
    Tensor* p = named.second;
    if (name.ends_with(".lora_A.weight") || name.ends_with(".lora_B.weight")) {
      ++adapters;
      continue;
    }
    INFO(name);
    const std::vector<float> x = p->to_vector<float>(), y = base.at(name).to_vector<float>();
    CHECK(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
  }
  CHECK(adapters == 2 * 2 * 4);  // 2 heads x 4 linears x (A, B)
  // A resume that asks for other adapters is refused.
  o.resume = true;
  o.out_dir = w.dir.file("lora-straight");
  o.lora->rank = 4;
  CHECK_THROWS_WITH_AS(Trainer{o}, doctest::Contains("LoRA (--lora-rank"), Error);
}

TEST_CASE("LoRA: --merge-lora folds the adapters into the final model's weights") {
  World w;
  TrainOptions o = w.options("merged");
  o.lora = nn::LoraConfig{};
  o.lora->rank = 2;
  o.merge_lora = true;
  o.steps = 3;
  Quiet quiet;
  Trainer(o).run(quiet);
  CHECK_FALSE(fs::exists(o.out_dir + "/adapter_config.json"));
  auto merged = load_model_dir(o.out_dir);
  for (auto& [name, p] : merged->named_parameters()) CHECK_FALSE(name.ends_with(".lora_A.weight"));
  // The last checkpoint keeps the adapters apart, and its logits equal the merged model's.
  auto ckpt = load_checkpoint(list_checkpoints(o.out_dir).back().second);
  CHECK(fs::exists(list_checkpoints(o.out_dir).back().second + "/adapter_config.json"));
  NoGradGuard no_grad;
  const Tensor ids = from_vector<int64_t>({1, 5, 9, 33, 2, 7}, {1, 6});
  const std::vector<float> a = merged->forward(ids).to_vector<float>(), b = ckpt.model->forward(ids).to_vector<float>();
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
  CHECK(worst < 1e-5);
}

TEST_CASE("the same run at 1 and 2 threads gives the same bits") {
  World w;
  auto train_with = [&](int threads, const std::string& out) {
    hydra::test::ScopedThreads scoped(threads);
    TrainOptions o = w.options(out);
    o.steps = 3;
    o.head_data[2] = {w.head_data};
    auto t = std::make_unique<Trainer>(o);
    for (int s = 0; s < 3; ++s) t->step();
    return t;
  };
  auto one = train_with(1, "t1");
  auto two = train_with(2, "t2");
  check_same_bits(one->model(), two->model());
}

TEST_CASE("--head-data for every trained head needs no --data: the run is the one --data would not change") {
  World w;
  auto train_with = [&](bool with_data, const std::string& out) {
    TrainOptions o = w.options(out);
    o.steps = 2;
    o.train_heads = {0, 2};
    o.head_data[0] = {w.head_data};
    o.head_data[2] = {w.val};
    if (!with_data) o.data.clear();
    auto t = std::make_unique<Trainer>(o);
    for (int s = 0; s < 2; ++s) t->step();
    return t;
  };
  auto with_data = train_with(true, "hd1");
  auto without = train_with(false, "hd2");
  check_same_bits(with_data->model(), without->model());
  // ... and it trained: head 0 moved away from the initial weights.
  auto initial = load_model_dir(w.model);
  const std::string name = "heads.0.blocks.0.feed_forward.w1.weight";
  CHECK(initial->state_dict().at(name).to_vector<float>() != without->model().state_dict().at(name).to_vector<float>());
}

TEST_CASE("gradient accumulation: K micro-batches of B equal one batch of K*B") {
  World w;
  auto losses = [&](int64_t batch, int64_t accum, bool sft, const std::string& out) {
    TrainOptions o = w.options(out);
    o.data_order = DataOrder::Sequential;
    o.batch = batch;
    o.grad_accum = accum;
    o.steps = 3;
    o.optimizer.kind = OptimizerKind::SGD;  // linear in the gradient: differences stay at rounding level
    o.optimizer.weight_decay = 0;
    if (sft) {
      o.data.clear();
      o.sft = w.sft;
      o.tokenizer = hydra::test::fixture_path("tokenizer/tiny.tokenizer.json");
    }
    Trainer t(o);
    std::vector<double> out_losses;
    for (int s = 0; s < 3; ++s) out_losses.push_back(t.step().loss);
    return out_losses;
  };
  for (bool sft : {false, true}) {
    INFO("sft " << sft);
    const std::vector<double> big = losses(4, 1, sft, sft ? "s1" : "n1"), split = losses(2, 2, sft, sft ? "s2" : "n2"),
                              split4 = losses(1, 4, sft, sft ? "s3" : "n3");
    for (int s = 0; s < 3; ++s) {
      CHECK(split[s] == doctest::Approx(big[s]).epsilon(1e-6));
      CHECK(split4[s] == doctest::Approx(big[s]).epsilon(1e-6));
    }
  }
}

TEST_CASE("a frozen trunk stays bit-identical, runs once per micro-batch and gets no gradient") {
  World w;
  TrainOptions o = w.options("frozen");
  o.freeze = {"trunk.*"};
  o.grad_accum = 2;
  Trainer t(o);
  auto before = small_config().build("cpu", 5);
  for (const TrainableParameter& p : t.trainable().list()) CHECK_FALSE(p.name.starts_with("trunk."));
  const int64_t calls = t.model().trunk_calls();
  t.step();
  t.step();
  CHECK(t.model().trunk_calls() - calls == 4);  // 2 steps x 2 micro-batches, all heads sharing the data
  auto state = before->state_dict();
  for (auto& named : t.model().named_parameters()) {
    const std::string& name = named.first;
    Tensor* p = named.second;
    if (!name.starts_with("trunk.")) continue;
    INFO(name);
    CHECK_FALSE(p->grad().defined());
    const std::vector<float> x = p->to_vector<float>(), y = state.at(name).to_vector<float>();
    CHECK(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("--train-heads runs only those heads; the others and the lm_head stay as they were") {
  World w;
  TrainOptions o = w.options("heads");
  o.train_heads = {2};
  Trainer t(o);
  CHECK(t.trained_heads() == std::vector<int64_t>{2});
  for (const TrainableParameter& p : t.trainable().list()) CHECK(p.name.starts_with("heads.2."));
  const StepMetrics m = t.step();
  CHECK(m.head_loss.size() == 1);
  CHECK(m.loss == m.head_loss[0]);
}

TEST_CASE("checkpoints: every save_every steps and at the end, the last `keep` kept, plus the best") {
  World w;
  TrainOptions o = w.options("keep");
  o.steps = 7;
  o.save_every = 2;
  o.keep = 2;
  Quiet quiet;
  Trainer(o).run(quiet);
  std::vector<int64_t> steps;
  for (auto& [s, path] : list_checkpoints(o.out_dir)) steps.push_back(s);
  CHECK(steps == std::vector<int64_t>{6, 7});
  // The final model sits next to the logs and loads.
  auto final_model = load_model_dir(o.out_dir);
  CHECK(final_model->config().n_heads == 3);
  CHECK(read_bytes(o.out_dir + "/metrics.csv").starts_with(
      "step,lr,loss,loss_head0,loss_head1,loss_head2,grad_norm,tokens_per_s,elapsed_s,communication_s\n1,"));
}

TEST_CASE("a diverging run stops naming the step and the parameter; the last checkpoint stays loadable") {
  World w;
  TrainOptions o = w.options("nan");
  o.lr = 1e30;  // the first update sends the weights to +-1e30: the next loss overflows
  o.warmup = 0;
  o.clip = 0;
  o.save_every = 1;
  o.steps = 5;
  Quiet quiet;
  Trainer t(o);
  CHECK_THROWS_WITH_AS(t.run(quiet), doctest::Contains("step 2: the loss is"), TrainingDiverged);
  auto ckpts = list_checkpoints(o.out_dir);
  REQUIRE(ckpts.size() == 1);
  CHECK(ckpts[0].first == 1);
  CHECK(load_checkpoint(ckpts[0].second).state.step == 1);
}

TEST_CASE("bad runs are refused before any work, naming the reason") {
  World w;
  auto refuses = [&](TrainOptions o, const std::string& message) {
    INFO(message);
    CHECK_THROWS_WITH_AS(Trainer{o}, doctest::Contains(message.c_str()), Error);
    CHECK_FALSE(fs::exists(o.out_dir));  // nothing written
  };
  TrainOptions o = w.options("bad");
  TrainOptions x = o;
  x.train_heads = {3};
  refuses(x, "--train-heads: head 3 is out of range");
  x = o;
  x.seq = 800;
  refuses(x, "holds no window of 801 ids");
  x = o;
  x.head_data[7] = {w.data};
  refuses(x, "--head-data 7=...: head 7 is out of range");
  x = o;
  x.resume = true;
  refuses(x, "--resume: nothing to resume");
  x = o;
  x.data.clear();
  refuses(x, "give --data (next-token) or --sft");
  x = o;
  x.data.clear();
  x.head_data[0] = {w.head_data};
  refuses(x, "train: head(s) 1,2 have no data: give --data, or --head-data K=PATH for each trained head");
  x = o;
  x.steps = 0;
  refuses(x, "give --steps N or --epochs E");
  x = o;
  x.freeze = {"trunk.nothing.*"};
  refuses(x, "matches no parameter");

  // A resume with other arguments or other data.
  Quiet quiet;
  o.steps = 2;
  Trainer(o).run(quiet);
  CHECK_THROWS_WITH_AS(Trainer{o}, doctest::Contains("already holds a training run"), Error);
  o.resume = true;
  TrainOptions y = o;
  y.lr = 1e-3;
  CHECK_THROWS_WITH_AS(Trainer{y}, doctest::Contains("--resume: the schedule (--lr"), Error);
  y = o;
  y.batch = 3;
  CHECK_THROWS_WITH_AS(Trainer{y}, doctest::Contains("--batch differs from the run being resumed: it ran with 2"), Error);
  y = o;
  y.data = {w.val};
  CHECK_THROWS_WITH_AS(Trainer{y}, doctest::Contains("--data differs"), Error);
  // The same path with other bytes.
  std::string bytes = read_bytes(w.data);
  bytes[10] ^= 1;
  hydra::test::write_bytes(w.data, bytes);
  CHECK_THROWS_WITH_AS(Trainer{o}, doctest::Contains("differs from the one the run trained on"), Error);
}

TEST_CASE("uncertainty head: on a task where correctness is learnable, the trained judge beats the constant predictor") {
  TempDir dir("judge-learn");
  HydraTransformerConfig config = small_config();
  config.base_config.vocab_size = 320;  // the tiny tokenizer's letters and the judge tokens A and B
  const std::string model = dir.file("model");
  save_model_dir(model, *config.build("cpu", 11));
  const std::string tokenizer = hydra::test::fixture_path("tokenizer/tiny.tokenizer.json");
  const io::Tokenizer tok = io::Tokenizer::load(tokenizer);
  JudgeOptions j;
  j.judge_head = 2;
  j.answer_head = 0;

  // Head 0's own answers first; each row then gives that answer when the prompt starts with 'x' (head 0
  // is "right" there) and a wrong one when it starts with 'y': the judge can read correctness off the
  // prompt, as a real judge reads it off what makes a question hard.
  auto prompt_of = [](int a) { return std::string(a % 2 ? "x" : "y") + std::to_string(a) + "+" + std::to_string(a % 7) + "="; };
  auto rows_for = [&](int from, int to, const std::string& name) {
    std::string probe;
    for (int a = from; a < to; ++a) probe += nlohmann::json({{"prompt", prompt_of(a)}, {"answer", "?"}}).dump() + "\n";
    auto loaded = load_model_dir(model);
    const auto ex = prepare_judge_examples(*loaded, dir.write(name, probe), tok, j, 64);
    std::string rows;
    for (int a = from; a < to; ++a) {
      const std::string answer = a % 2 ? ex[a - from].answer : ex[a - from].answer + "0";
      rows += nlohmann::json({{"prompt", prompt_of(a)}, {"answer", answer}}).dump() + "\n";
    }
    return dir.write(name, rows);
  };
  TrainOptions o;
  o.model_dir = model;
  o.out_dir = dir.file("run");
  o.sft = rows_for(0, 140, "train.jsonl");
  o.val = {rows_for(140, 200, "val.jsonl")};
  o.tokenizer = tokenizer;
  o.judge = j;
  o.batch = 8;
  o.seq = 64;
  o.steps = 150;
  o.lr = 3e-3;
  o.warmup = 10;
  Trainer t(o);
  const JudgeEval before = t.evaluate_judge();
  for (int s = 0; s < o.steps; ++s) t.step();
  const JudgeEval after = t.evaluate_judge();
  const double constant = after.accuracy * (1 - after.accuracy);  // the best constant guess: the base rate
  MESSAGE("judge: val Brier " << before.brier << " -> " << after.brier << " (constant predictor " << constant
                              << "), AUROC " << after.auroc << ", ECE " << after.ece << ", answer head right on "
                              << after.accuracy);
  CHECK(after.accuracy > 0.3);
  CHECK(after.accuracy < 0.7);
  CHECK(after.brier < 0.8 * constant);
  CHECK(after.auroc > 0.8);
  // Only the judge head trained.
  for (const TrainableParameter& p : t.trainable().list()) CHECK(p.name.starts_with("heads.2."));
}

TEST_CASE("auroc: ranks with ties, and NaN without both classes") {
  CHECK(auroc({0.9, 0.8, 0.3, 0.1}, {1, 1, 0, 0}) == 1.0);
  CHECK(auroc({0.1, 0.3, 0.8, 0.9}, {1, 1, 0, 0}) == 0.0);
  CHECK(auroc({0.5, 0.5, 0.5, 0.5}, {1, 0, 1, 0}) == 0.5);
  CHECK(auroc({0.9, 0.4, 0.6, 0.2}, {1, 1, 0, 0}) == 0.75);
  CHECK(std::isnan(auroc({0.2, 0.3}, {1, 1})));
}
