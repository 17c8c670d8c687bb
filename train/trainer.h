// The training engine: full training and head fine-tuning of a HydraTransformer on the CPU.
//
// One optimizer step (Trainer::step):
//   1. lr = schedule(step); zero the gradient slab.
//   2. Read the step's K micro-batches from every data stream (one stream shared by the heads that read
//      the common data, one per head with its own data), and count each head's targets over all K:
//      head k's loss is Σ CE / Σ count over the whole step (token-weighted, hydra/loss.h).
//   3. For each micro-batch and each group of heads reading the same batch:
//        h = trunk(inputs)                     with a graph only if some trunk parameter trains;
//        for each head k of the group:         (only trained heads run)
//          loss_k = lm_head(head_k(h)) CE share / number of trained heads;  loss_k.backward()
//        then the trunk's backward, once, from the gradient the heads summed into h (in head order).
//      Running one head at a time keeps one head's activations and logits alive at a time, not N.
//   4. The global gradient norm (pre-clip; non-finite stops the run, naming the first bad parameter),
//      clipping with torch.nn.utils.clip_grad_norm_'s rule, then one fused optimizer pass.
//
// Several processes (mpirun -np P, train/distributed.h; docs/distributed.md) split a step two ways:
//   data parallel:  every rank holds the whole model; a step has P*K micro-batches and rank r computes
//                   numbers r, r+P, r+2P, ...; the gradients are added across ranks in rank order.
//                   With K = 1 this is bit for bit `--grad-accum P` in one process (which, for that,
//                   computes each micro-batch's gradient alone and adds it in order: stash_grad).
//   head parallel:  the trained heads are split into contiguous runs, one per rank; every rank runs the
//                   trunk, only its own heads, and (when the trunk trains) the trunk's backward from the
//                   gradient at the trunk output summed across ranks in rank (= head) order. Parameters
//                   no head owns and outside the trunk (the lm_head) have their gradients summed across
//                   ranks; each rank updates its own heads, and the heads are shared out (broadcast)
//                   before anything reads the whole model (evaluation, checkpoints, the final model).
// Either way the loss, the gradient norm and clipping are global, every rank reads every micro-batch
// of the step (so every data stream stays the same on every rank and each head's loss is normalized
// by its count over the whole step), and rank 0 alone writes files.
//
// Trainer::run adds the loop around it: evaluation every eval_every steps, checkpoints every save_every
// steps and at the end (the last `keep`, plus the best with keep_best), early stopping, and the files
// in out_dir (see TrainOutputs). A run resumed from its latest checkpoint continues bit-identically to
// one never interrupted: the data streams are pure functions of their cursors, the optimizer state and
// every random stream are in the checkpoint, and the logs are cut back to the checkpoint's step.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hydra/hydra_transformer.h"
#include "io/token_data.h"
#include "nn/lora.h"
#include "tensor/random.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/evaluate.h"
#include "train/gradient_buckets.h"
#include "train/judge.h"
#include "train/memory_estimate.h"
#include "train/optimizer.h"
#include "train/schedule.h"
#include "train/trainable.h"

namespace hydra::train {

enum class ParallelMode { Data, Heads };
const char* parallel_mode_name(ParallelMode mode);          // "data", "heads"
ParallelMode parse_parallel_mode(const std::string& name);  // error listing the choices

struct TrainOptions {
  // Where from and where to.
  std::string model_dir;  // the model to start from (config.json + model.safetensors)
  std::string out_dir;    // checkpoints, logs and the final model

  // Next-token objective: token files read as one stream in the order given.
  std::vector<std::string> data;
  std::vector<std::string> val;  // validation token files (or, for sft, one JSON Lines file)
  io::TokenDType token_dtype = io::TokenDType::Auto;
  DataOrder data_order = DataOrder::Shuffle;
  // Per-head data: head -> its own files (token files, or one .jsonl for sft).
  std::map<int64_t, std::vector<std::string>> head_data;
  bool shard_by_head = false;  // head k reads only shard k of N contiguous shards of the data

  // SFT objective (instead of `data`): a JSON Lines file of {"prompt", "answer"} and the tokenizer.
  std::string sft;
  std::string tokenizer;
  bool sft_eos = false;
  bool truncate_left = false;
  // The uncertainty objective (train/judge.h), on the same prompt/answer file as `sft`: only the judge
  // head trains, on the Brier score of its verdict about the answer head's answers.
  std::optional<JudgeOptions> judge;

  // The shape of a step: grad_accum micro-batches of batch x seq.
  int64_t batch = 8, seq = 256, grad_accum = 1;
  int64_t steps = 0;   // optimizer steps; or
  double epochs = 0;   // passes over the largest data stream (exactly one of the two is > 0)

  OptimizerOptions optimizer;
  double lr = 3e-4;
  int64_t warmup = 0;
  ScheduleKind schedule = ScheduleKind::Cosine;
  double min_lr_ratio = 0.1;
  double clip = 1.0;  // max global gradient norm; 0 turns clipping off

  // What trains: everything but `freeze` (globs over parameter names), or with train_heads only those
  // heads (everything else frozen).
  std::vector<std::string> freeze;
  std::vector<int64_t> train_heads;
  // LoRA: adapters on the trained heads' targeted linears (hydra/lora.h), and only they train. The
  // final model keeps them as adapter files, or folds them into the weights with merge_lora.
  std::optional<nn::LoraConfig> lora;
  bool merge_lora = false;

  uint64_t seed = 0;

  // Evaluation, checkpoints.
  int64_t eval_every = 0;          // 0: only at the end (when val is given)
  int64_t eval_tokens = 1 << 16;   // the first N tokens of the val data (next-token)
  int64_t eval_batch = 0;          // 0: the training batch
  int64_t save_every = 0;          // 0: only at the end
  int64_t keep = 2;                // checkpoints kept (the newest)
  bool keep_best = false;          // also keep the one with the lowest val loss
  int64_t early_stop_patience = 0;  // stop after P evals without improvement (0: never)
  bool resume = false;

  std::string created_by = "hydra";  // written into checkpoint manifests

  // How several processes (mpirun) split the work; ignored in one process.
  ParallelMode parallel = ParallelMode::Data;
};

// Per optimizer step.
struct StepMetrics {
  int64_t step = 0;
  double lr = 0, loss = 0, grad_norm = 0;
  std::vector<double> head_loss;  // per trained head, in trained_heads() order
  int64_t tokens = 0;             // input positions through the trunk this step
  double step_seconds = 0, tokens_per_s = 0, elapsed_s = 0;
  double communication_s = 0;  // of step_seconds, the time spent in collectives between processes
};

// A non-finite loss or gradient: the run stops and the last checkpoint stays as it was. Not a
// hydra::Error (a usage error): the command line exits 1 for it.
class TrainingDiverged : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What Trainer::run reports as it goes (the command line draws progress from it). Every hook is optional.
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  virtual void on_micro_batch(int64_t /*step*/, int64_t /*micro_batch*/) {}
  virtual void on_step(const StepMetrics&) {}
  virtual void on_eval(int64_t /*step*/, const EvalResult&) {}
  virtual void on_judge_eval(int64_t /*step*/, const JudgeEval&) {}
  virtual void on_checkpoint(int64_t /*step*/, const std::string& /*path*/) {}
  virtual void on_message(const std::string&) {}
};

class Trainer {
 public:
  // Checks every option and input (throws hydra::Error before any work or any write), loads the model
  // (or, with resume, the latest checkpoint in out_dir, refusing one made with other arguments), opens
  // and validates the data.
  explicit Trainer(TrainOptions options);
  ~Trainer();

  // One optimizer step (see the top of this file).
  StepMetrics step();
  // The evaluation set of the run (val data), if any, through train/evaluate.h.
  bool has_eval_data() const { return eval_data_ != nullptr; }
  EvalResult evaluate();
  JudgeEval evaluate_judge();  // the uncertainty objective's evaluation on its val rows
  // Writes out_dir/checkpoints/step_<N> and prunes old ones.
  std::string save_checkpoint();
  // The whole run; returns when the steps are done or early stopping ends it.
  void run(TrainObserver& observer);

  HydraTransformer& model() { return *model_; }
  const TrainOptions& options() const { return options_; }
  int64_t steps_done() const { return step_; }
  int64_t total_steps() const { return schedule_.total_steps; }
  const std::vector<int64_t>& trained_heads() const { return trained_heads_; }
  const TrainableParameters& trainable() const { return *trainable_; }
  // Lines describing the run: parameters, heads, data, the memory estimate (the CLI prints them as its
  // banner).
  std::vector<std::string> describe() const;
  // The memory a step of this run takes (train/memory_estimate.h), from its model, heads and shapes.
  MemoryEstimate memory_estimate() const;
  // The arguments that must match for a resume (the model config, data, shapes, optimizer ...).
  const nlohmann::json& run_identity() const { return identity_; }
  // Under head parallelism, gives every rank every head's current weights and optimizer state (each
  // rank updates only its own heads); a no-op otherwise. Collective: every rank must call it.
  void share_heads();
  // The rank that trains head k (0 unless heads are split across ranks).
  int owner_of_head(int64_t k) const;

 private:
  struct Group;  // heads reading the same batches, with their stream

  void setup_trainable();
  void setup_data();
  void setup_identity();
  void resume_from(Checkpoint& checkpoint);
  int64_t forward_backward(int64_t step, std::map<int64_t, double>& head_loss);
  int64_t judge_forward_backward(int64_t step, std::map<int64_t, double>& head_loss);
  TrainingState training_state() const;
  void prune_checkpoints();
  void setup_parallel();
  std::vector<int> uses_per_micro_batch() const;  // for buckets_: one per use in the forward
  bool heads_split() const { return ranks_ > 1 && options_.parallel == ParallelMode::Heads; }
  bool data_split() const { return ranks_ > 1 && options_.parallel == ParallelMode::Data; }
  bool writes_files() const { return rank_ == 0; }
  // The micro-batches of one step over every rank (grad_accum, times the ranks under data parallelism).
  int64_t micro_batches_per_step() const { return data_split() ? options_.grad_accum * ranks_ : options_.grad_accum; }

  TrainOptions options_;
  HydraTransformerConfig data_config_;  // the model's config, read before the model itself
  std::unique_ptr<HydraTransformer> model_;
  std::vector<int64_t> trained_heads_;
  bool trunk_trains_ = false;
  std::unique_ptr<TrainableParameters> trainable_;
  std::unique_ptr<Optimizer> optimizer_;
  LrSchedule schedule_;
  std::vector<Group> groups_;
  std::shared_ptr<const Dataset> eval_data_;
  bool sft_ = false;
  int64_t judge_id_a_ = -1, judge_id_b_ = -1;  // the judge tokens' ids
  std::vector<DataFileRecord> data_files_;
  nlohmann::json identity_;
  Generator dropout_gen_;  // LoRA dropout masks (saved in checkpoints as the "lora_dropout" stream)

  // Processes (train/distributed.h): this one's rank, how many, and under head parallelism the owner of
  // every trainable parameter (-1: no head owns it).
  int rank_ = 0, ranks_ = 1;
  std::map<int64_t, int> head_owner_;
  std::vector<int> param_owner_;
  // Under data parallelism: the gradient sum overlapped with backward (null with $HYDRA_MPI_OVERLAP=0),
  // and whether the ranks agreed on that (checked at the first step).
  std::unique_ptr<GradientBuckets> buckets_;
  bool overlap_checked_ = false;

  int64_t step_ = 0, tokens_seen_ = 0;
  double elapsed_before_ = 0;  // seconds trained before this process (a resumed run)
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  TrainObserver* observer_ = nullptr;  // during run()
  // Early stopping and keep_best.
  double best_val_loss_ = 0;
  int64_t best_step_ = -1, evals_since_best_ = 0;
};

// "step_00000042": the name of a checkpoint directory inside out_dir/checkpoints.
std::string checkpoint_name(int64_t step);
// The checkpoints in out_dir/checkpoints, oldest first, as (step, path).
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& out_dir);

}  // namespace hydra::train
