// Running a Trainer: one optimizer step (forward, backward, the sums across processes, clipping, the
// update), evaluation, checkpoints and the loop around them. Building one is trainer_setup.cpp.
#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>
#include <sstream>

#include "autograd/ops.h"
#include "hydra/lora.h"
#include "hydra/loss.h"
#include "hydra/model_dir.h"
#include "io/atomic_dir.h"
#include "io/tokenizer.h"
#include "tensor/copy.h"
#include "tensor/machine_memory.h"
#include "tensor/parallel.h"
#include "train/distributed.h"
#include "train/permutation.h"
#include "train/run_log.h"
#include "train/sft_data.h"
#include "train/trainer_internal.h"

namespace hydra::train {

namespace fs = std::filesystem;
using json = nlohmann::json;
using trainer_detail::join_ints;
using trainer_detail::kCheckpointsDir;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%08lld", static_cast<long long>(step));
  return buf;
}

std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& out_dir) {
  const fs::path dir = fs::path(out_dir) / kCheckpointsDir;
  std::set<int64_t> steps;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return {};
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string name = entry.path().filename().string();
    // "step_N", or its aside copy (a replace interrupted between its two renames: io/atomic_dir.h).
    if (const std::string target = io::target_of_aside_name(name); !target.empty()) name = target;
    if (!name.starts_with("step_") || name.size() != 13) continue;
    if (name.find_first_not_of("0123456789", 5) != std::string::npos) continue;
    steps.insert(std::stoll(name.substr(5)));
  }
  std::vector<std::pair<int64_t, std::string>> out;
  for (int64_t s : steps) out.push_back({s, (dir / checkpoint_name(s)).string()});
  return out;
}

// ---- one step ----

StepMetrics Trainer::step() {
  HYDRA_CHECK(step_ < schedule_.total_steps, "train: all ", schedule_.total_steps, " steps are done");
  const auto start = std::chrono::steady_clock::now();
  const int64_t s = step_ + 1;
  const double n_trained = static_cast<double>(trained_heads_.size());
  const double lr = schedule_.lr_at(s);
  const double comm_before = dist::communication_seconds();
  trainable_->zero_grad();

  // LoRA dropout is on while the step runs (and only then: evaluation sees no dropout).
  struct DropoutOff {
    nn::Module& model;
    ~DropoutOff() { nn::set_lora_training(model, nullptr); }
  } dropout_off{*model_};
  nn::set_lora_training(*model_, &dropout_gen_);
  std::map<int64_t, double> head_loss;  // each trained head's loss over the step
  const int64_t tokens = options_.judge ? judge_forward_backward(s, head_loss) : forward_backward(s, head_loss);

  StepMetrics r;
  r.step = s;
  r.lr = lr;
  for (int64_t k : trained_heads_) {
    r.head_loss.push_back(head_loss[k]);
    r.loss += head_loss[k];
  }
  r.loss /= n_trained;
  if (heads_split()) {
    // Each rank holds the gradients of its own heads (and copies of the rest, the same on every rank):
    // each chunk's sum of squares is taken from its owner (rank 0 for the shared ones), the others add
    // +0 (exactly), and the chunks are added in order as in one process.
    std::vector<double> sums = trainable_->chunk_square_sums();
    const auto& chunks = trainable_->chunks();
    for (size_t c = 0; c < chunks.size(); ++c) {
      const int owner = param_owner_[static_cast<size_t>(chunks[c].param)];
      if ((owner < 0 ? 0 : owner) != rank_) sums[c] = 0.0;
    }
    dist::allreduce_in_rank_order(sums);
    r.grad_norm = TrainableParameters::norm_of(sums);
  } else {
    r.grad_norm = trainable_->grad_norm();
  }
  if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm)) {
    const std::string bad = trainable_->first_non_finite_grad();
    std::ostringstream os;
    os << "step " << s << ": the loss is " << r.loss << " and the gradient norm " << r.grad_norm;
    if (!bad.empty()) os << "; the first parameter whose gradient is not finite is '" << bad << "'";
    os << ". The run stops before updating the weights; the last checkpoint is intact (lower --lr, or "
          "check the data)";
    throw TrainingDiverged(os.str());
  }
  // torch.nn.utils.clip_grad_norm_: coef = max_norm / (norm + 1e-6), applied when below 1.
  // NOTE: computed in float32, as PyTorch does with its float32 norm tensor.
  if (options_.clip > 0) {
    const float coef = static_cast<float>(options_.clip) / (static_cast<float>(r.grad_norm) + 1e-6f);
    if (coef < 1.0f) trainable_->scale_grad(coef);
  }
  optimizer_->step(lr);
  step_ = s;
  tokens_seen_ += tokens;
  r.tokens = tokens;
  r.step_seconds = seconds_since(start);
  r.tokens_per_s = static_cast<double>(tokens) / std::max(r.step_seconds, 1e-9);
  r.elapsed_s = elapsed_before_ + seconds_since(started_);
  r.communication_s = dist::communication_seconds() - comm_before;
  return r;
}

// Steps 2-4 of the top of trainer.h for the next-token and SFT objectives, and their split across
// processes (the top of trainer.h). Returns the input tokens of the step (over every rank).
int64_t Trainer::forward_backward(int64_t s, std::map<int64_t, double>& head_loss) {
  const int64_t M = micro_batches_per_step();
  const double n_trained = static_cast<double>(trained_heads_.size());
  // Every micro-batch of the step first: each head's loss is token-weighted over all M of them.
  std::vector<std::vector<Batch>> batches(static_cast<size_t>(M));
  std::map<int64_t, int64_t> counted;  // head -> targets counted over the step
  int64_t tokens = 0;
  for (int64_t m = 0; m < M; ++m)
    for (Group& g : groups_) {
      batches[m].push_back(g.stream->next(options_.batch));
      const int64_t c = count_targets(batches[m].back().targets);
      for (int64_t k : g.heads) counted[k] += c;
      tokens += batches[m].back().inputs.numel();
    }
  for (int64_t k : trained_heads_)
    HYDRA_CHECK(counted[k] > 0, "step ", s, ": head ", k, "'s batches have no counted target (every target ignored)");

  // shares[e]: entry e = (micro-batch m, group, head of the group), in that nested order, holds the
  // head's loss share times n_trained. Each entry is computed by one rank (the others leave +0), so
  // adding the ranks' arrays is exact, and head_loss is then summed in one process's order.
  int64_t per_micro = 0;
  for (const Group& g : groups_) per_micro += static_cast<int64_t>(g.heads.size());
  std::vector<double> shares(static_cast<size_t>(M * per_micro), 0.0);
  auto mine = [&](int64_t k) { return !heads_split() || owner_of_head(k) == rank_; };
  // More than one micro-batch on this rank: each one's gradient alone, added in order (stash_grad).
  const bool stash = options_.grad_accum > 1;
  if (data_split() && !overlap_checked_) {
    // Overlapped or not changes which sums the ranks start; every rank must do the same. (mpirun passes
    // the environment to the ranks of its own machine only; other machines need -x HYDRA_MPI_OVERLAP.)
    std::vector<double> overlapping{buckets_ ? 1.0 : 0.0};
    dist::allreduce_in_rank_order(overlapping);
    HYDRA_CHECK(overlapping[0] == 0 || overlapping[0] == ranks_, "HYDRA_MPI_OVERLAP differs between the ranks (",
                overlapping[0], " of ", ranks_, " overlap the gradient sums with backward); set it for every "
                "rank (mpirun -x HYDRA_MPI_OVERLAP=...)");
    overlap_checked_ = true;
  }
  // An error unwinding the step must not leave the engine reporting to the buckets.
  struct Disarm {
    GradientBuckets* buckets;
    ~Disarm() {
      if (buckets) buckets->disarm();
    }
  } disarm{buckets_.get()};
  for (int64_t m = 0; m < M; ++m) {
    if (data_split() && m % ranks_ != rank_) continue;  // another rank's micro-batch
    if (observer_) observer_->on_micro_batch(s, m);
    // This rank's last micro-batch: each layer's gradients are final once its backward has run, and
    // their sum across the ranks starts right then (train/gradient_buckets.h).
    const bool last_here = buckets_ && m + ranks_ >= M;
    if (last_here) buckets_->arm(uses_per_micro_batch(), stash);
    int64_t e = m * per_micro;
    for (size_t gi = 0; gi < groups_.size(); ++gi) {
      const Group& g = groups_[gi];
      const Batch& batch = batches[m][gi];
      const bool any_mine = std::any_of(g.heads.begin(), g.heads.end(), mine);
      // Every rank runs the trunk's backward when the trunk trains (from the summed gradient below).
      if (!any_mine && !(heads_split() && trunk_trains_)) {
        e += static_cast<int64_t>(g.heads.size());
        continue;
      }
      // The trunk runs once for the group; with a graph only when one of its parameters trains.
      Tensor h;
      {
        std::optional<NoGradGuard> no_grad;
        if (!trunk_trains_) no_grad.emplace();
        h = model_->forward_trunk(batch.inputs);  // shape: (B, T, C)
      }
      // The heads start from a leaf that collects the gradient they send back to the trunk.
      Tensor h_in = h.detach();
      if (trunk_trains_) h_in.set_requires_grad(true);
      for (int64_t k : g.heads) {
        if (!mine(k)) {
          ++e;
          continue;
        }
        // The lm_head fused with the loss: this head's (B, T, V) logits never exist whole.
        Tensor share = lm_head_loss_share(model_->lm_head, model_->heads[k]->forward(h_in), batch.targets,
                                          static_cast<double>(counted[k]) * n_trained);
        shares[static_cast<size_t>(e++)] = share.item<double>() * n_trained;
        if (share.requires_grad()) share.backward();
      }
      if (trunk_trains_ && heads_split()) {
        // The gradient at the trunk output, summed over the ranks' heads in rank (= head) order; then
        // every rank runs the same trunk backward and gets the same trunk gradients.
        Tensor dh = h_in.grad().defined() ? kernels::clone_raw(h_in.grad()) : zeros(h.shape());
        dist::allreduce_in_rank_order(std::span<float>(dh.data<float>(), static_cast<size_t>(dh.numel())));
        h.backward(dh);
      } else if (trunk_trains_ && h_in.grad().defined()) {
        h.backward(h_in.grad());
      }
    }
    if (stash && !last_here) trainable_->stash_grad();
  }
  if (stash && !buckets_) trainable_->restore_stash();

  if (ranks_ > 1) dist::allreduce_in_rank_order(shares);
  for (int64_t m = 0, e = 0; m < M; ++m)
    for (const Group& g : groups_)
      for (int64_t k : g.heads) head_loss[k] += shares[static_cast<size_t>(e++)];

  if (data_split()) {
    // Rank r holds the gradient of its micro-batches; the step's is their sum in rank order.
    if (buckets_)
      buckets_->finish();
    else
      dist::allreduce_in_rank_order(trainable_->grad_slab());
  } else if (heads_split()) {
    // Parameters outside the trunk that no head owns (the lm_head) collect gradient from every rank's
    // heads. (The trunk's gradients are already the same everywhere, and each head's is on its owner.)
    const auto& list = trainable_->list();
    std::span<float> slab = trainable_->grad_slab();
    for (size_t i = 0; i < list.size(); ++i) {
      if (param_owner_[i] >= 0 || list[i].name.starts_with("trunk.")) continue;
      const auto [b, e] = trainable_->slab_range(i);
      dist::allreduce_in_rank_order(slab.subspan(static_cast<size_t>(b), static_cast<size_t>(e - b)));
    }
  }
  return tokens;
}

// The uncertainty objective: the judge head's mean Brier score over the step's K micro-batches.
int64_t Trainer::judge_forward_backward(int64_t s, std::map<int64_t, double>& head_loss) {
  const int64_t K = options_.grad_accum, judge = options_.judge->judge_head;
  Group& g = groups_.at(0);
  const double rows = static_cast<double>(K * options_.batch);
  int64_t tokens = 0;
  for (int64_t m = 0; m < K; ++m) {
    if (observer_) observer_->on_micro_batch(s, m);
    const Batch batch = g.stream->next(options_.batch);
    tokens += batch.inputs.numel();
    Tensor share = brier_share(judge_scores(*model_, batch, judge, judge_id_a_, judge_id_b_), batch.label, rows);
    head_loss[judge] += share.item<double>();
    share.backward();
  }
  return tokens;
}

JudgeEval Trainer::evaluate_judge() {
  HYDRA_CHECK(eval_data_ != nullptr && options_.judge, "evaluate_judge: the run has no judge --val data");
  return train::evaluate_judge(*model_, static_cast<const JudgeDataset&>(*eval_data_), options_.judge->judge_head,
                               judge_id_a_, judge_id_b_, options_.eval_batch > 0 ? options_.eval_batch : options_.batch);
}

EvalResult Trainer::evaluate() {
  HYDRA_CHECK(eval_data_ != nullptr && !options_.judge, "evaluate: the run has no --val data to score heads on");
  std::vector<int64_t> all;
  for (int64_t k = 0; k < model_->config().n_heads; ++k) all.push_back(k);
  EvalOptions eo;
  eo.batch_size = options_.eval_batch > 0 ? options_.eval_batch : options_.batch;
  eo.exact_match = sft_;
  eo.across_ranks = ranks_ > 1;  // every rank scores its share of the batches
  return train::evaluate(*model_, *eval_data_, all, eo);
}

// ---- checkpoints ----

TrainingState Trainer::training_state() const {
  TrainingState st;
  st.step = step_;
  st.tokens_seen = tokens_seen_;
  optimizer_->save_state(st);
  st.schedule = schedule_.to_json();
  st.data_loader = json::object();
  for (const Group& g : groups_) st.data_loader[g.name] = g.stream->state();
  st.run_config = identity_;
  st.rng["lora_dropout"] = {dropout_gen_.seed(), dropout_gen_.offset()};
  st.progress = {{"elapsed_s", elapsed_before_ + seconds_since(started_)},
                 {"best_val_loss", best_val_loss_},
                 {"best_step", best_step_},
                 {"evals_since_best", evals_since_best_}};
  return st;
}

std::string Trainer::save_checkpoint() {
  const fs::path dir = fs::path(options_.out_dir) / kCheckpointsDir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  HYDRA_CHECK(!ec, "cannot create ", dir.string(), ": ", ec.message());
  const std::string path = (dir / checkpoint_name(step_)).string();
  SaveCheckpointOptions so;
  so.created_by = options_.created_by;
  train::save_checkpoint(path, *model_, training_state(), data_files_, so);
  prune_checkpoints();
  return path;
}

void Trainer::prune_checkpoints() {
  auto all = list_checkpoints(options_.out_dir);
  const size_t keep = static_cast<size_t>(options_.keep);
  if (all.size() <= keep) return;
  for (size_t i = 0; i + keep < all.size(); ++i) {
    const auto& [s, path] = all[i];
    if (options_.keep_best && s == best_step_) continue;
    // Renamed first, so a kill halfway through the removal never leaves a damaged "step_N" behind.
    std::string doomed_name = ".";
    doomed_name += checkpoint_name(s);
    doomed_name += ".removing";
    const fs::path doomed = fs::path(path).parent_path() / doomed_name;
    std::error_code ec;
    fs::rename(path, doomed, ec);
    if (!ec) fs::remove_all(doomed, ec);
  }
}

// ---- the run ----

std::vector<std::string> Trainer::describe() const {
  std::vector<std::string> lines;
  std::ostringstream os;
  const int64_t total = model_->num_params(), trainable = trainable_->numel();
  os << "parameters: " << total << " total, " << trainable << " trainable, " << total - trainable << " frozen";
  lines.push_back(os.str());
  os.str("");
  os << "heads trained: " << join_ints(trained_heads_) << " of " << model_->config().n_heads
     << (trunk_trains_ ? " (trunk trains)" : " (trunk frozen: forward only, no backward)");
  lines.push_back(os.str());
  for (const Group& g : groups_) {
    os.str("");
    os << "data " << g.name << " (heads " << join_ints(g.heads) << "): " << g.stream->dataset().describe();
    if (g.stream->size() != g.stream->dataset().size())
      os << "; items " << g.stream->size() << " of them (shard)";
    os << ", " << data_order_name(options_.data_order);
    lines.push_back(os.str());
  }
  if (eval_data_) lines.push_back("val: " + eval_data_->describe());
  if (ranks_ > 1) {
    os.str("");
    if (data_split()) {
      os << "parallel: data, " << ranks_ << " MPI ranks; rank r computes micro-batches r, r+" << ranks_ << ", ... of the "
         << micro_batches_per_step() << " in a step; gradients summed in rank order, "
         << (buckets_ ? std::to_string(buckets_->size()) + " layer buckets sent as backward completes them"
                      : std::string("the whole slab after backward"));
    } else {
      os << "parallel: heads, " << ranks_ << " MPI ranks;";
      for (int r = 0; r < ranks_; ++r) {
        std::vector<int64_t> own;
        for (int64_t k : trained_heads_)
          if (owner_of_head(k) == r) own.push_back(k);
        os << (r ? ";" : "") << " rank " << r << ": head(s) " << join_ints(own);
      }
    }
    lines.push_back(os.str());
  }
  os.str("");
  os << "steps: " << schedule_.total_steps << " x " << micro_batches_per_step() << " micro-batch(es) of " << options_.batch
     << " x " << options_.seq << "; " << optimizer_kind_name(options_.optimizer.kind) << " lr " << options_.lr << " ("
     << schedule_kind_name(options_.schedule) << ", warm-up " << options_.warmup << "), clip " << options_.clip;
  lines.push_back(os.str());
  const MemoryEstimate m = memory_estimate();
  os.str("");
  os << "memory estimate per step: " << human_bytes(m.total()) << " = weights " << human_bytes(m.weights)
     << " + gradients " << human_bytes(m.gradients) << " + " << optimizer_kind_name(options_.optimizer.kind)
     << " state " << human_bytes(m.optimizer) << " + activations " << human_bytes(m.activations);
  lines.push_back(os.str());
  if (eval_data_ && !options_.judge) {
    // Evaluation runs with the slabs still allocated: a forward of every head at the evaluation batch.
    const int64_t eval_batch = options_.eval_batch > 0 ? options_.eval_batch : options_.batch;
    const MemoryEstimate ev = estimate_evaluation(model_->config(), eval_batch, options_.seq);
    os.str("");
    os << "memory estimate while evaluating: " << human_bytes(m.total() - m.activations + ev.activations)
       << " (activations " << human_bytes(ev.activations) << ": every head's logits at batch " << eval_batch << ")";
    lines.push_back(os.str());
  }
  return lines;
}

MemoryEstimate Trainer::memory_estimate() const {
  TrainingShape shape;
  shape.batch = options_.batch;
  shape.seq = options_.seq;
  shape.grad_accum = micro_batches_per_step();
  shape.computed_micro_batches = options_.grad_accum;
  shape.data_groups = static_cast<int64_t>(groups_.size());
  shape.heads = trained_heads_;
  shape.optimizer = options_.optimizer.kind;
  shape.judge = options_.judge.has_value();
  return estimate_training_step(*model_, shape);
}

void Trainer::run(TrainObserver& observer) {
  observer_ = &observer;
  started_ = std::chrono::steady_clock::now();
  // Under several processes rank 0 alone writes (logs, plots, checkpoints, the final model).
  const bool writer = writes_files();
  std::error_code ec;
  if (writer) fs::create_directories(options_.out_dir, ec);
  HYDRA_CHECK(!ec, "cannot create --out ", options_.out_dir, ": ", ec.message());

  std::vector<std::string> columns = {"step", "lr", "loss"};
  for (int64_t k : trained_heads_) columns.push_back("loss_head" + std::to_string(k));
  for (const char* c : {"grad_norm", "tokens_per_s", "elapsed_s", "communication_s"}) columns.push_back(c);
  CsvLog metrics((fs::path(options_.out_dir) / "metrics.csv").string(), columns);
  std::unique_ptr<CsvLog> evals;
  if (eval_data_ && options_.judge) {
    evals = std::make_unique<CsvLog>((fs::path(options_.out_dir) / "eval.csv").string(),
                                     std::vector<std::string>{"step", "brier", "answer_head_accuracy", "auroc", "ece"});
  } else if (eval_data_) {
    std::vector<std::string> ecols = {"step"};
    for (int64_t k = 0; k < model_->config().n_heads; ++k) ecols.push_back("loss_head" + std::to_string(k));
    for (const char* c : {"ensemble_loss", "poe_loss", "disagreement"}) ecols.push_back(c);
    if (sft_) {
      for (int64_t k = 0; k < model_->config().n_heads; ++k) ecols.push_back("exact_match_head" + std::to_string(k));
      ecols.push_back("exact_match_ensemble");
    }
    evals = std::make_unique<CsvLog>((fs::path(options_.out_dir) / "eval.csv").string(), ecols);
  }
  if (!writer) {
  } else if (options_.resume) {
    metrics.cut_back_to(step_);
    if (evals) evals->cut_back_to(step_);
  } else {
    metrics.start();
    if (evals) evals->start();
  }
  bool plot_warned = false;
  auto plot = [&] {
    if (!writer) return;
    const std::string why = plot_losses(options_.out_dir, metrics, evals.get());
    if (!why.empty() && !plot_warned) observer.on_message("loss.svg not drawn: " + why);
    plot_warned = plot_warned || !why.empty();
  };

  int64_t saved_at = options_.resume ? step_ : -1;
  bool stop = false;
  while (step_ < schedule_.total_steps && !stop) {
    const StepMetrics m = step();
    std::vector<std::string> row = {std::to_string(m.step), log_number(m.lr), log_number(m.loss)};
    for (double l : m.head_loss) row.push_back(log_number(l));
    row.push_back(log_number(m.grad_norm));
    row.push_back(log_number(m.tokens_per_s));
    row.push_back(log_number(m.elapsed_s));
    row.push_back(log_number(m.communication_s));
    if (writer) metrics.append(row);
    observer.on_step(m);

    const bool last = step_ == schedule_.total_steps;
    bool save_now = last || (options_.save_every > 0 && step_ % options_.save_every == 0);
    if (eval_data_ && (last || (options_.eval_every > 0 && step_ % options_.eval_every == 0))) {
      // The run's val loss: the mean over the trained heads (the Brier score for the judge). Under
      // mpirun every rank scores a share of the batches and gets the whole result (train/evaluate.h);
      // the judge runs in one process only. Every rank then takes rank 0's verdict (early stopping,
      // the best step).
      share_heads();
      double val = 0;
      if (options_.judge) {
        if (writer) {  // always: the uncertainty objective is refused under mpirun
          const JudgeEval e = evaluate_judge();
          evals->append({std::to_string(step_), log_number(e.brier), log_number(e.accuracy), log_number(e.auroc),
                         log_number(e.ece)});
          observer.on_judge_eval(step_, e);
          val = e.brier;
          const std::string why = plot_reliability((fs::path(options_.out_dir) / "reliability.svg").string(), e);
          if (!why.empty() && !plot_warned) observer.on_message("reliability.svg not drawn: " + why);
        }
      } else {
        const EvalResult e = evaluate();
        if (writer) {
          std::vector<std::string> erow = {std::to_string(step_)};
          for (double l : e.head_loss) erow.push_back(log_number(l));
          erow.push_back(log_number(e.ensemble_loss));
          erow.push_back(log_number(e.poe_loss));
          erow.push_back(log_number(e.disagreement));
          if (sft_) {
            for (double x : e.head_exact_match) erow.push_back(log_number(x));
            erow.push_back(log_number(e.ensemble_exact_match));
          }
          evals->append(erow);
          observer.on_eval(step_, e);
        }
        for (int64_t k : trained_heads_) val += e.head_loss[k];
        val /= static_cast<double>(trained_heads_.size());
      }
      dist::broadcast(&val, sizeof val, 0);
      if (best_step_ < 0 || val < best_val_loss_) {
        best_val_loss_ = val;
        best_step_ = step_;
        evals_since_best_ = 0;
        save_now = save_now || options_.keep_best;
      } else if (options_.early_stop_patience > 0 && ++evals_since_best_ >= options_.early_stop_patience) {
        observer.on_message("early stop at step " + std::to_string(step_) + ": no better val loss in " +
                            std::to_string(evals_since_best_) + " evaluations (best " + log_number(best_val_loss_) +
                            " at step " + std::to_string(best_step_) + ")");
        stop = true;
        save_now = true;
      }
      plot();
    }
    if (save_now && saved_at != step_) {
      share_heads();
      if (writer) observer.on_checkpoint(step_, save_checkpoint());
      saved_at = step_;
    }
  }
  share_heads();
  if (saved_at != step_ && writer) observer.on_checkpoint(step_, save_checkpoint());
  // The final model, loadable by every command, next to the logs (checkpoints keep the adapters apart).
  if (options_.merge_lora) {
    const int64_t merged = merge_lora_adapters(*model_);
    observer.on_message("merged " + std::to_string(merged) + " LoRA adapters into the final model's weights");
  }
  if (writer) write_model_files(options_.out_dir, *model_);
  plot();
  // No rank leaves before rank 0 has written everything (a launcher may end the job when one exits).
  dist::barrier();
  observer_ = nullptr;
}

}  // namespace hydra::train
