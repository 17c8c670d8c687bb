// `hydra train`: train a Hydra from scratch or fine-tune its heads (the engine is train/trainer.h).
//
//   hydra train models/tiny --data train.bin --val val.bin --out runs/tiny --steps 1000 --batch 8 --seq 256
//   hydra train models/tiny --data 'shards/train_*.bin' --out runs/heads --train-heads 0,2 --lr 1e-3
//   hydra train models/tiny --data train.bin --shard-by-head --freeze 'trunk.*' --out runs/shards --steps 200
//   hydra train models/tiny --sft qa.jsonl --tokenizer tokenizer.json --out runs/sft --epochs 3
//   hydra train models/tiny --data train.bin --train-heads 1 --lora-rank 8 --out runs/lora --steps 300
//   hydra train runs/sft --objective uncertainty --sft qa.jsonl --tokenizer tokenizer.json --judge-head 3
//       --answer-head 0 --out runs/judge --epochs 5
//   hydra train models/tiny --data train.bin --out runs/tiny --steps 1000 --resume
//   hydra train models/tiny --data train.bin --out runs/tiny --steps 1000 --tokenizer t.json --sample-every 100
//   mpirun -np 4 hydra train models/tiny --data train.bin --out runs/dp --steps 1000      (docs/distributed.md)
//   mpirun -np 3 hydra train models/tiny --data train.bin --out runs/hp --parallel heads --freeze 'trunk.*'
//
// Under mpirun rank 0 alone prints and writes; the others run quietly. An error in one rank during the
// run ends the whole job (train/distributed.h).
//
// On a terminal one progress line is redrawn in place; otherwise one plain line every --log-every steps.
// A banner first says what will train on what. Exit codes: 0 done; 1 the run diverged (a non-finite loss
// or gradient: the last checkpoint stays intact); 2 bad arguments or inputs, reported before any work
// and without touching --out.
//
// For crash tests only: HYDRA_TEST_KILL_AT makes the process SIGKILL itself at a chosen instant:
//   "micro:S:M"              before micro-batch M (from 0) of step S (under mpirun: in the rank computing it)
//   "stop:S:M"               the same instant, but SIGSTOP: a process that hangs
//   "save:S:<commit step>"   while writing the checkpoint of step S, right after the directory commit step
//                            named (io/atomic_dir.h: "temp synced", "old moved aside", "new renamed in")
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <glob.h>
#include <iostream>
#include <sstream>

#include "cli/command.h"
#include "hydra/generate.h"
#include "hydra/model_dir.h"
#include "io/atomic_dir.h"
#include "io/tokenizer.h"
#include "tensor/parallel.h"
#include "train/distributed.h"
#include "train/trainer.h"

namespace hydra::cli {

namespace {

// A path, or a quoted glob ('shards/train_*.bin') expanded and sorted; a glob matching nothing is an error.
std::vector<std::string> expand(const std::string& pattern, const std::string& flag) {
  if (pattern.find_first_of("*?[") == std::string::npos) return {pattern};
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);  // glob sorts its matches
  std::vector<std::string> out;
  if (rc == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) out.push_back(g.gl_pathv[i]);
  ::globfree(&g);
  HYDRA_CHECK(!out.empty(), flag, " '", pattern, "' matches no file");
  return out;
}

std::vector<std::string> expand_all(const std::vector<std::string>& patterns, const std::string& flag) {
  std::vector<std::string> out;
  for (const std::string& p : patterns)
    for (std::string& f : expand(p, flag)) out.push_back(std::move(f));
  return out;
}

std::vector<int64_t> parse_heads(const std::string& text, const std::string& flag) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ',')) {
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    HYDRA_CHECK(used > 0 && used == part.size(), flag, ": '", part, "' is not a head index (expected e.g. 0,2)");
    out.push_back(v);
  }
  HYDRA_CHECK(!out.empty(), flag, ": empty list (expected head indices such as 0,2)");
  return out;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const long long s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, (s / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  return buf;
}

// --sample-every: a short greedy sample from each trained head every `every` steps, printed and
// appended to OUT_DIR/samples.txt (as nanoGPT and llm.c do). Greedy decoding draws from no random
// stream, and generate() runs under NoGradGuard and frees its KV caches: the run is bit-identical with
// and without samples.
class Sampler {
 public:
  Sampler(const std::string& tokenizer_path, const std::string& prompt, int64_t tokens, int64_t every,
          const HydraTransformerConfig& config, std::string out_dir)
      : tokenizer_(io::Tokenizer::load(tokenizer_path)), every_(every), path_(std::move(out_dir) + "/samples.txt") {
    const int64_t V = config.base_config.vocab_size;
    HYDRA_CHECK(static_cast<int64_t>(tokenizer_.vocab_size()) <= V, "--sample-every: the tokenizer ", tokenizer_path,
                " has ", tokenizer_.vocab_size(), " ids, more than the model's vocabulary of ", V);
    // The default prompt is the end-of-text token alone, as llm.c samples from.
    const std::string text = prompt.empty() ? "<|endoftext|>" : prompt;
    for (uint32_t id : tokenizer_.encode(text, /*allow_special=*/true)) prompt_.push_back(id);
    HYDRA_CHECK(!prompt_.empty(), "--sample-prompt: the prompt is empty");
    HYDRA_CHECK(!prompt.empty() || tokenizer_.token_id(text), "--sample-every: the tokenizer ", tokenizer_path,
                " has no <|endoftext|> token to start samples from; give --sample-prompt TEXT");
    options_.temperature = 0;
    options_.max_new_tokens = tokens;
    options_.mode = GenerateMode::Head;
    options_.vocab_limit = static_cast<int64_t>(tokenizer_.vocab_size());
    check_generate_options(options_, config, static_cast<int64_t>(prompt_.size()));
  }

  bool due(int64_t step) const { return step % every_ == 0; }

  // One text block per trained head; also appended to samples.txt.
  std::vector<std::string> sample(train::Trainer& trainer, int64_t step) {
    std::vector<std::string> blocks;
    std::string file_text;
    for (int64_t head : trainer.trained_heads()) {
      options_.head = head;
      const GenerateResult r = generate(trainer.model(), prompt_, options_);
      std::vector<uint32_t> ids(prompt_.begin(), prompt_.end());
      ids.insert(ids.end(), r.ids.begin(), r.ids.end());
      blocks.push_back("sample @ step " + std::to_string(step) + ", head " + std::to_string(head) + ":\n" +
                       tokenizer_.decode(ids));
      file_text += blocks.back() + "\n\n";
    }
    std::FILE* f = std::fopen(path_.c_str(), "ab");
    HYDRA_CHECK(f != nullptr, "cannot append to ", path_);
    const bool ok = std::fwrite(file_text.data(), 1, file_text.size(), f) == file_text.size();
    HYDRA_CHECK(std::fclose(f) == 0 && ok, "cannot write ", path_);
    return blocks;
  }

 private:
  io::Tokenizer tokenizer_;
  std::vector<int64_t> prompt_;
  GenerateOptions options_;
  int64_t every_;
  std::string path_;
};

// Progress on stdout: a line redrawn in place on a terminal, plain lines every log_every steps otherwise.
class Progress : public train::TrainObserver {
 public:
  // quiet: another rank than 0 under mpirun, which prints nothing (but still takes part in sampling).
  Progress(int64_t total_steps, int64_t log_every, std::string kill_at, bool quiet)
      : total_(total_steps), log_every_(log_every), tty_(::isatty(1) && !quiet), quiet_(quiet),
        kill_at_(std::move(kill_at)) {}
  void sample_with(Sampler* sampler, train::Trainer* trainer) {
    sampler_ = sampler;
    trainer_ = trainer;
  }

  void on_micro_batch(int64_t step, int64_t micro) override {
    const std::string at = std::to_string(step) + ":" + std::to_string(micro);
    if (kill_at_ == "micro:" + at) ::raise(SIGKILL);
    if (kill_at_ == "stop:" + at) ::raise(SIGSTOP);  // a hung process (under mpirun: a hung rank)
  }
  void on_step(const train::StepMetrics& m) override {
    if (sampler_ && sampler_->due(m.step)) trainer_->share_heads();  // collective: every rank
    if (quiet_) return;
    const double eta = m.elapsed_s / static_cast<double>(m.step - first_step_ + 1) * static_cast<double>(total_ - m.step);
    if (first_step_ == 0) first_step_ = m.step;
    char line[256];
    std::snprintf(line, sizeof line, "step %lld/%lld  loss %.4f  lr %.3g  %.0f tok/s  elapsed %s  eta %s",
                  static_cast<long long>(m.step), static_cast<long long>(total_), m.loss, m.lr, m.tokens_per_s,
                  format_duration(m.elapsed_s).c_str(), format_duration(eta).c_str());
    if (tty_) {
      std::printf("\r\033[K%s", line);
      std::fflush(stdout);
      dirty_ = true;
    } else if (m.step == 1 || m.step == total_ || m.step % log_every_ == 0) {
      std::printf("%s\n", line);
      std::fflush(stdout);
    }
    if (sampler_ && sampler_->due(m.step))
      for (const std::string& block : sampler_->sample(*trainer_, m.step)) say(block);
  }
  void on_eval(int64_t step, const train::EvalResult& e) override {
    std::ostringstream os;
    os << "eval @ step " << step << ": loss";
    for (size_t i = 0; i < e.heads.size(); ++i) os << " head" << e.heads[i] << " " << fixed(e.head_loss[i]);
    os << " | ensemble " << fixed(e.ensemble_loss) << " poe " << fixed(e.poe_loss) << " | disagreement "
       << fixed(e.disagreement);
    if (e.has_exact_match) os << " | exact match ensemble " << fixed(e.ensemble_exact_match);
    say(os.str());
  }
  void on_judge_eval(int64_t step, const train::JudgeEval& e) override {
    std::ostringstream os;
    os << "eval @ step " << step << ": judge Brier " << fixed(e.brier) << " | answer head right on "
       << fixed(e.accuracy) << " | AUROC " << fixed(e.auroc) << " | ECE " << fixed(e.ece);
    say(os.str());
  }
  void on_checkpoint(int64_t step, const std::string& path) override {
    if (quiet_) return;
    say("checkpoint @ step " + std::to_string(step) + ": " + path);
  }
  void on_message(const std::string& message) override {
    if (!quiet_) say(message);
  }
  void finish() {
    if (dirty_) std::printf("\n");
    dirty_ = false;
  }

 private:
  static std::string fixed(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4f", v);
    return buf;
  }
  void say(const std::string& text) {
    finish();
    std::printf("%s\n", text.c_str());
    std::fflush(stdout);
  }

  int64_t total_, log_every_, first_step_ = 0;
  bool tty_, quiet_, dirty_ = false;
  std::string kill_at_;
  Sampler* sampler_ = nullptr;
  train::Trainer* trainer_ = nullptr;
};

}  // namespace

Command add_train_command(CLI::App& hydra) {
  struct Options {
    train::TrainOptions t;
    std::vector<std::string> data, val, head_data, freeze;
    std::string token_dtype = "auto", data_order = "shuffle", schedule = "cosine", optimizer = "adamw";
    std::string train_heads, truncate = "error";
    std::optional<double> weight_decay;
    int64_t log_every = 10;
    std::string objective;
    std::string judge_tokens = "A,B";
    train::JudgeOptions judge;
    int64_t lora_rank = 0;
    double lora_alpha = 0, lora_dropout = 0;
    int64_t sample_every = 0, sample_tokens = 32;
    std::string sample_prompt;
    std::string lora_targets = "w1,w2,w3";
    std::string parallel = "data";
    std::string dtype = "fp32";
  };
  auto opt = std::make_shared<Options>();
  train::TrainOptions& t = opt->t;
  CLI::App* app = hydra.add_subcommand("train", "Train a model, or fine-tune some of its heads, on token data or SFT pairs");
  app->add_option("model", t.model_dir, "Model directory to start from (hydra init, convert, or a previous run's --out)")
      ->required();
  app->add_option("--out", t.out_dir, "Run directory: checkpoints/, metrics.csv, eval.csv, loss.svg, the final model")
      ->required();
  add_dtype_option(app, opt->dtype, "Weights: fp32 only (bf16 is for inference: forward, eval, generate)");
  // Data.
  app->add_option("--data", opt->data, "Token file(s) read as one stream in order; repeatable; a quoted glob is sorted");
  app->add_option("--val", opt->val, "Validation token file(s) (or, with --sft, a JSON Lines file)");
  app->add_option("--token-dtype", opt->token_dtype, "Id type of raw token files: auto, uint16 or uint32 (default auto)");
  app->add_option("--data-order", opt->data_order, "shuffle (a new permutation of the windows each epoch) or sequential");
  app->add_option("--head-data", opt->head_data, "K=PATH: head K trains on its own data; repeatable");
  app->add_flag("--shard-by-head", t.shard_by_head, "Split the data into N contiguous shards; head k reads shard k");
  app->add_option("--sft", t.sft, "Supervised fine-tuning on a JSON Lines file of {\"prompt\", \"answer\"} (instead of --data)");
  app->add_option("--tokenizer", t.tokenizer, "tokenizer.json for --sft and --sample-every");
  app->add_flag("--sft-eos", t.sft_eos, "Append the end-of-text token to each answer (counted in the loss)");
  app->add_option("--objective", opt->objective,
                  "next-token (with --data), sft (with --sft) or uncertainty (a judge head on --sft rows)");
  app->add_option("--judge-head", opt->judge.judge_head, "uncertainty: the head that learns to judge (it alone trains)");
  app->add_option("--answer-head", opt->judge.answer_head, "uncertainty: the head whose answers are judged");
  app->add_option("--max-answer-tokens", opt->judge.max_answer_tokens, "uncertainty: greedy answer length (default 1)")
      ->check(integer_in_range(1, 4096));
  app->add_option("--judge-tokens", opt->judge_tokens, "uncertainty: the 'right' and 'wrong' tokens (default A,B)");
  app->add_option("--judge-template", opt->judge.judge_template,
                  "uncertainty: the judge's text, with {prompt} and {answer} (default \"{prompt} Answer: {answer}\\n"
                  "Task: Reply A (correct) or B (wrong): \")");
  app->add_option("--truncate", opt->truncate, "A row longer than --seq: error (default) or left (drop prompt tokens)");
  // Shape of a step.
  app->add_option("--steps", t.steps, "Optimizer steps")->check(integer_in_range(1, int64_t{1} << 40));
  app->add_option("--epochs", t.epochs, "Passes over the largest data stream (instead of --steps)");
  app->add_option("--batch", t.batch, "Sequences per micro-batch (default 8)")->check(integer_in_range(1, 1 << 20));
  app->add_option("--seq", t.seq, "Tokens per sequence (default 256)")->check(integer_in_range(1, 1 << 20));
  app->add_option("--grad-accum", t.grad_accum, "Micro-batches per optimizer step (default 1)")->check(integer_in_range(1, 1 << 20));
  // Optimizer, schedule, clipping.
  app->add_option("--optimizer", opt->optimizer, "adamw (default) or sgd");
  app->add_option("--lr", t.lr, "Peak learning rate (default 3e-4)");
  app->add_option("--warmup", t.warmup, "Linear warm-up steps (default 0)")->check(integer_in_range(0, int64_t{1} << 40));
  app->add_option("--schedule", opt->schedule, "After warm-up: constant, cosine (default) or linear decay");
  app->add_option("--min-lr-ratio", t.min_lr_ratio, "Where cosine/linear decay ends, as a fraction of --lr (default 0.1)");
  app->add_option("--beta1", t.optimizer.beta1, "AdamW beta1 (default 0.9)");
  app->add_option("--beta2", t.optimizer.beta2, "AdamW beta2 (default 0.95)");
  app->add_option("--eps", t.optimizer.eps, "AdamW eps (default 1e-8)");
  app->add_option("--weight-decay", opt->weight_decay, "On 2-D weight matrices only (default 0.1 for adamw, 0 for sgd)");
  app->add_option("--momentum", t.optimizer.momentum, "SGD momentum (default 0.9)");
  app->add_option("--clip", t.clip, "Max global gradient norm (default 1.0; 0 turns clipping off)");
  // What trains.
  app->add_option("--freeze", opt->freeze, "Freeze parameters matching a glob (e.g. 'trunk.*'); repeatable");
  app->add_option("--train-heads", opt->train_heads, "Train only these heads, e.g. 0,2 (everything else frozen)");
  app->add_option("--lora-rank", opt->lora_rank, "Train LoRA adapters of this rank instead of the weights (heads only)")
      ->check(integer_in_range(1, 1 << 16));
  app->add_option("--lora-alpha", opt->lora_alpha, "LoRA alpha: the adapter's output is scaled by alpha/rank (default 2*rank)");
  app->add_option("--lora-dropout", opt->lora_dropout, "Dropout on the adapters' input while training (default 0)");
  app->add_option("--lora-targets", opt->lora_targets,
                  "Linears that get adapters: names (w1,w2,w3, w_q, ...) inside the trained heads, or dotted globs "
                  "(default w1,w2,w3)");
  app->add_flag("--merge-lora", t.merge_lora, "Fold the adapters into the final model's weights");
  app->add_option("--seed", t.seed, "Seed of the data order (and every other random choice) (default 0)");
  // Evaluation, checkpoints, logging.
  app->add_option("--eval-every", t.eval_every, "Evaluate on --val every K steps (default: only at the end)")
      ->check(integer_in_range(0, int64_t{1} << 40));
  app->add_option("--eval-tokens", t.eval_tokens, "The first N tokens of --val form the eval set (default 65536)")
      ->check(integer_in_range(2, int64_t{1} << 50));
  app->add_option("--eval-batch", t.eval_batch, "Batch size of evaluation (default: --batch)")->check(integer_in_range(1, 1 << 20));
  app->add_option("--save-every", t.save_every, "Checkpoint every K steps (default: only at the end)")
      ->check(integer_in_range(0, int64_t{1} << 40));
  app->add_option("--keep", t.keep, "Checkpoints kept, newest first (default 2)")->check(integer_in_range(1, 1 << 20));
  app->add_flag("--keep-best", t.keep_best, "Also keep the checkpoint with the lowest val loss");
  app->add_option("--early-stop-patience", t.early_stop_patience, "Stop after P evaluations without a better val loss")
      ->check(integer_in_range(0, 1 << 20));
  app->add_flag("--resume", t.resume, "Continue the run in --out from its latest checkpoint");
  app->add_option("--sample-every", opt->sample_every,
                  "Print a greedy sample from each trained head every K steps (needs --tokenizer; also OUT/samples.txt)")
      ->check(integer_in_range(1, int64_t{1} << 40));
  app->add_option("--sample-prompt", opt->sample_prompt, "Text the samples continue (default: <|endoftext|>)");
  app->add_option("--sample-tokens", opt->sample_tokens, "Tokens per sample (default 32)")
      ->check(integer_in_range(1, 1 << 20));
  app->add_option("--parallel", opt->parallel,
                  "Under mpirun: data (default: each rank computes some micro-batches of every step) or heads "
                  "(each rank trains some heads)");
  app->add_option("--log-every", opt->log_every, "Plain progress line every K steps when not on a terminal (default 10)")
      ->check(integer_in_range(1, int64_t{1} << 40));

  return {app, [opt] {
            HYDRA_CHECK(parse_dtype_option(opt->dtype) == DType::Float32, "--dtype ", opt->dtype,
                        ": bfloat16 weights are for inference (forward, eval, generate); training needs float32");
            train::TrainOptions& t = opt->t;
            t.data = expand_all(opt->data, "--data");
            t.val = expand_all(opt->val, "--val");
            t.token_dtype = io::parse_token_dtype(opt->token_dtype);
            t.data_order = train::parse_data_order(opt->data_order);
            t.schedule = train::parse_schedule_kind(opt->schedule);
            t.optimizer.kind = train::parse_optimizer_kind(opt->optimizer);
            t.optimizer.weight_decay =
                opt->weight_decay.value_or(t.optimizer.kind == train::OptimizerKind::AdamW ? 0.1 : 0.0);
            HYDRA_CHECK(opt->truncate == "error" || opt->truncate == "left", "--truncate: expected error or left, got '",
                        opt->truncate, "'");
            t.truncate_left = opt->truncate == "left";
            t.freeze = opt->freeze;
            if (!opt->train_heads.empty()) t.train_heads = parse_heads(opt->train_heads, "--train-heads");
            for (const std::string& hd : opt->head_data) {
              const size_t eq = hd.find('=');
              HYDRA_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < hd.size(), "--head-data '", hd,
                          "': expected K=PATH (e.g. 0=head0.bin)");
              const std::vector<int64_t> k = parse_heads(hd.substr(0, eq), "--head-data");
              HYDRA_CHECK(k.size() == 1, "--head-data '", hd, "': one head per option");
              HYDRA_CHECK(!t.head_data.count(k[0]), "--head-data: head ", k[0], " is given twice");
              t.head_data[k[0]] = expand(hd.substr(eq + 1), "--head-data");
            }
            if (opt->lora_rank > 0) {
              nn::LoraConfig lora;
              lora.rank = opt->lora_rank;
              lora.alpha = opt->lora_alpha;
              lora.dropout = opt->lora_dropout;
              lora.targets = split_commas(opt->lora_targets);
              t.lora = lora;
            } else {
              HYDRA_CHECK(opt->lora_alpha == 0 && opt->lora_dropout == 0 && opt->lora_targets == "w1,w2,w3",
                          "--lora-alpha, --lora-dropout and --lora-targets need --lora-rank");
            }
            const std::string objective =
                !opt->objective.empty() ? opt->objective : (t.sft.empty() ? "next-token" : "sft");
            HYDRA_CHECK(objective == "next-token" || objective == "sft" || objective == "uncertainty",
                        "--objective: expected next-token, sft or uncertainty, got '", objective, "'");
            HYDRA_CHECK(objective != "next-token" || t.sft.empty(), "--objective next-token reads --data, not --sft");
            HYDRA_CHECK(objective == "next-token" || !t.sft.empty(), "--objective ", objective,
                        " reads prompt/answer rows: give --sft FILE.jsonl");
            if (objective == "uncertainty") {
              HYDRA_CHECK(opt->judge.judge_head >= 0 && opt->judge.answer_head >= 0,
                          "--objective uncertainty needs --judge-head U and --answer-head A");
              opt->judge.parse_tokens(opt->judge_tokens);
              t.judge = opt->judge;
            } else {
              HYDRA_CHECK(opt->judge.judge_head < 0 && opt->judge.answer_head < 0,
                          "--judge-head and --answer-head belong to --objective uncertainty");
            }
            t.created_by = std::string("hydra ") + kVersion;
            t.parallel = train::parse_parallel_mode(opt->parallel);
            HYDRA_CHECK(opt->sample_every > 0 || (opt->sample_prompt.empty() && opt->sample_tokens == 32),
                        "--sample-prompt and --sample-tokens need --sample-every");
            HYDRA_CHECK(opt->sample_every == 0 || !t.tokenizer.empty(),
                        "--sample-every needs --tokenizer (to encode the prompt and decode the samples)");
            std::unique_ptr<Sampler> sampler;
            std::unique_ptr<train::Trainer> trainer_ptr;
            // Every check happens here, before any work or write. Under mpirun the ranks then agree
            // that all of them are ready (a file missing on one machine fails only there): the first
            // rank that failed reports why, and every rank exits non-zero (2 for a user error).
            const int rank = dist::rank(), ranks = dist::size();
            std::exception_ptr setup_error;
            try {
              if (opt->sample_every > 0)
                sampler = std::make_unique<Sampler>(t.tokenizer, opt->sample_prompt, opt->sample_tokens,
                                                    opt->sample_every, load_model_config(t.model_dir), t.out_dir);
              trainer_ptr = std::make_unique<train::Trainer>(t);
            } catch (...) {
              if (ranks == 1) throw;
              setup_error = std::current_exception();
            }
            if (ranks > 1) {
              std::vector<double> failed(static_cast<size_t>(ranks), 0.0);
              failed[static_cast<size_t>(rank)] = setup_error ? 1.0 : 0.0;
              dist::allreduce_in_rank_order(failed);
              const auto first = std::find(failed.begin(), failed.end(), 1.0);
              if (first != failed.end()) {
                // The failing rank says why before any rank exits: mpirun ends the whole job when the
                // first rank exits non-zero, and a message still unwritten then is lost.
                int code = 2;
                if (first - failed.begin() == rank) code = report_error(setup_error);
                dist::barrier();
                return code;
              }
            }
            train::Trainer& trainer = *trainer_ptr;
            const char* kill = std::getenv("HYDRA_TEST_KILL_AT");
            const std::string kill_at = kill ? kill : "";
            Progress progress(trainer.total_steps(), opt->log_every, kill_at, rank != 0);
            progress.sample_with(sampler.get(), &trainer);
            if (kill_at.starts_with("save:")) {
              // "save:S:<step name>": the commit of checkpoint step_S at that step.
              const size_t colon = kill_at.find(':', 5);
              const std::string dir = train::checkpoint_name(std::stoll(kill_at.substr(5, colon - 5)));
              const std::string when = kill_at.substr(colon + 1);
              // Only the named checkpoint: the hook compares the trainer's step count.
              io::set_directory_commit_hook([dir, when, &trainer](const std::string& step) {
                if (step == when && train::checkpoint_name(trainer.steps_done()) == dir) ::raise(SIGKILL);
              });
            }

            if (rank == 0) {
              std::printf("hydra train: %s -> %s%s\n", t.model_dir.c_str(), t.out_dir.c_str(),
                          t.resume ? (" (resuming at step " + std::to_string(trainer.steps_done()) + ")").c_str() : "");
              for (const std::string& line : trainer.describe()) std::printf("  %s\n", line.c_str());
              if (ranks > 1)
                std::printf("  threads: %d per rank (%d MPI ranks, %d on this machine); blas: %s\n  mpi: %s\n",
                            num_threads(), ranks, dist::local_size(), blas_description().c_str(), dist::library().c_str());
              else
                std::printf("  threads: %d; blas: %s\n", num_threads(), blas_description().c_str());
              std::printf("  simd: %s\n", simd_description().c_str());
              std::fflush(stdout);
            }
            try {
              trainer.run(progress);
            } catch (const train::TrainingDiverged& e) {
              // Every rank sees the same global loss and norm, so every rank stops here together.
              progress.finish();
              if (rank == 0) std::fprintf(stderr, "hydra: training stopped: %s\n", e.what());
              return 1;
            } catch (const std::exception& e) {
              if (ranks == 1) throw;
              // One rank's failure mid-run: the others would wait for it, so the whole job ends now.
              progress.finish();
              std::fprintf(stderr, "hydra: rank %d: error: %s; ending every rank\n", rank, e.what());
              dist::abort(dynamic_cast<const Error*>(&e) ? 2 : 1);
            }
            progress.finish();
            if (rank != 0) return 0;
            std::printf("done: %lld steps; final model in %s (config.json, model.safetensors)\n",
                        static_cast<long long>(trainer.steps_done()), t.out_dir.c_str());
            return 0;
          }};
}

}  // namespace hydra::cli
