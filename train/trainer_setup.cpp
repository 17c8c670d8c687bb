// Building a Trainer: the options checked, the data opened, the model loaded (or a checkpoint's, to
// resume), what trains, and the split of the work across processes. The run itself is trainer.cpp.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>
#include <sstream>

#include "hydra/lora.h"
#include "hydra/model_dir.h"
#include "io/tokenizer.h"
#include "train/distributed.h"
#include "train/permutation.h"
#include "train/sft_data.h"
#include "train/trainer.h"
#include "train/trainer_internal.h"

namespace hydra::train {

namespace fs = std::filesystem;
using json = nlohmann::json;
using trainer_detail::join_ints;
using trainer_detail::kCheckpointsDir;

namespace {

// Pure checks of the options that need no file (each names the command-line flag).
void check_options(const TrainOptions& o) {
  HYDRA_CHECK(!o.model_dir.empty(), "train: no model directory given");
  HYDRA_CHECK(!o.out_dir.empty(), "train: --out is required");
  // --head-data alone is enough when it names every trained head (setup_data checks that).
  HYDRA_CHECK(!(o.data.empty() && o.sft.empty() && o.head_data.empty()),
              "train: give --data (next-token) or --sft (supervised fine-tuning), or --head-data K=PATH for each "
              "trained head");
  HYDRA_CHECK(o.data.empty() || o.sft.empty(), "train: --data and --sft cannot be combined");
  HYDRA_CHECK(o.sft.empty() || !o.tokenizer.empty(), "train: --sft needs --tokenizer (the model's tokenizer.json)");
  HYDRA_CHECK(o.batch >= 1, "--batch must be >= 1, got ", o.batch);
  HYDRA_CHECK(o.seq >= 1, "--seq must be >= 1, got ", o.seq);
  HYDRA_CHECK(o.grad_accum >= 1, "--grad-accum must be >= 1, got ", o.grad_accum);
  HYDRA_CHECK((o.steps > 0) != (o.epochs > 0), o.steps > 0 ? "train: give --steps or --epochs, not both"
                                                            : "train: give --steps N or --epochs E (> 0)");
  HYDRA_CHECK(o.steps >= 0 && std::isfinite(o.epochs) && o.epochs >= 0, "train: --steps and --epochs must be positive");
  HYDRA_CHECK(std::isfinite(o.clip) && o.clip >= 0, "--clip must be >= 0 (0 turns clipping off), got ", o.clip);
  HYDRA_CHECK(o.eval_every >= 0 && o.save_every >= 0, "--eval-every and --save-every must be >= 0");
  HYDRA_CHECK(o.eval_tokens >= 2, "--eval-tokens must be >= 2, got ", o.eval_tokens);
  HYDRA_CHECK(o.eval_batch >= 0, "--eval-batch must be >= 0");
  HYDRA_CHECK(o.keep >= 1, "--keep must be >= 1, got ", o.keep);
  HYDRA_CHECK(o.early_stop_patience >= 0, "--early-stop-patience must be >= 0");
  HYDRA_CHECK(o.early_stop_patience == 0 || !o.val.empty(), "--early-stop-patience needs --val data to evaluate on");
  HYDRA_CHECK(!o.keep_best || !o.val.empty(), "--keep-best needs --val data to evaluate on");
  HYDRA_CHECK(!(o.shard_by_head && !o.head_data.empty()), "train: --shard-by-head and --head-data cannot be combined");
  HYDRA_CHECK(!o.merge_lora || o.lora, "train: --merge-lora needs LoRA adapters to merge (--lora-rank)");
  HYDRA_CHECK(!o.judge || !o.sft.empty(), "train: the uncertainty objective reads prompt/answer rows: give --sft FILE.jsonl");
  HYDRA_CHECK(!o.judge || (o.head_data.empty() && !o.shard_by_head),
              "train: the uncertainty objective trains one judge head: --head-data and --shard-by-head do not apply");
  if (o.lora) o.lora->validate();
  o.optimizer.validate();
  LrSchedule{o.schedule, o.lr, o.warmup, std::max<int64_t>(o.steps, std::max<int64_t>(o.warmup, 1)), o.min_lr_ratio}
      .validate();
}

std::vector<io::TokenFile> open_token_files(const std::vector<std::string>& paths, const TrainOptions& o,
                                            int64_t vocab_size) {
  std::vector<io::TokenFile> files;
  io::TokenFileOptions opts;
  opts.dtype = o.token_dtype;
  opts.vocab_size = vocab_size;
  for (const std::string& p : paths) {
    io::TokenFile f = io::open_token_file(p, opts);
    f.validate_tokens(vocab_size);
    files.push_back(std::move(f));
  }
  return files;
}

// Whether a run already lives in out_dir (its logs or checkpoints).
bool holds_a_run(const std::string& out_dir) {
  std::error_code ec;
  return fs::exists(fs::path(out_dir) / "metrics.csv", ec) || fs::exists(fs::path(out_dir) / kCheckpointsDir, ec);
}

// The flag a run_identity key comes from, for messages.
std::string flag_of(const std::string& key) {
  static const std::map<std::string, std::string> flags = {
      {"model_config", "the model (DIR's config.json)"}, {"objective", "--data / --sft"},
      {"data", "--data"}, {"head_data", "--head-data"}, {"shard_by_head", "--shard-by-head"},
      {"data_order", "--data-order"}, {"token_dtype", "--token-dtype"}, {"sft", "--sft"},
      {"tokenizer_sha256", "--tokenizer"}, {"sft_eos", "--sft-eos"}, {"truncate", "--truncate"},
      {"batch", "--batch"}, {"seq", "--seq"}, {"grad_accum", "--grad-accum"}, {"total_steps", "--steps / --epochs"},
      {"optimizer", "the optimizer (--optimizer, --beta1, --beta2, --eps, --weight-decay, --momentum)"},
      {"schedule", "the schedule (--lr, --warmup, --schedule, --min-lr-ratio)"}, {"clip", "--clip"},
      {"freeze", "--freeze"}, {"train_heads", "--train-heads"}, {"seed", "--seed"},
      {"lora", "LoRA (--lora-rank, --lora-alpha, --lora-dropout, --lora-targets)"},
      {"judge", "the uncertainty objective (--judge-head, --answer-head, --max-answer-tokens, --judge-tokens, "
                "--judge-template)"}};
  auto it = flags.find(key);
  return it == flags.end() ? key : it->second;
}

}  // namespace

const char* parallel_mode_name(ParallelMode mode) { return mode == ParallelMode::Heads ? "heads" : "data"; }

ParallelMode parse_parallel_mode(const std::string& name) {
  if (name == "data") return ParallelMode::Data;
  if (name == "heads") return ParallelMode::Heads;
  throw Error("--parallel: expected data or heads, got '" + name + "'");
}

// ---- setup ----

Trainer::Trainer(TrainOptions options)
    : options_(std::move(options)), dropout_gen_(mix64(options_.seed ^ 0xD809D0u)) {
  check_options(options_);
  rank_ = dist::rank();
  ranks_ = dist::size();
  if (ranks_ > 1) {
    // NOTE: refused because their results would depend on how the work is split: LoRA dropout draws
    // its masks from one stream in micro-batch order, and the uncertainty objective's pass 1 runs once.
    HYDRA_CHECK(!(options_.lora && options_.lora->dropout > 0), "--lora-dropout ", options_.lora ? options_.lora->dropout : 0.0,
                ": LoRA dropout is not supported across several processes (", ranks_,
                " MPI ranks); train with --lora-dropout 0, or in one process");
    HYDRA_CHECK(!options_.judge, "--objective uncertainty is not supported across several processes (", ranks_,
                " MPI ranks); run it in one process");
  }
  sft_ = !options_.sft.empty();
  const HydraTransformerConfig config = load_model_config(options_.model_dir);
  const int64_t n_heads = config.n_heads;
  for (const auto& [k, files] : options_.head_data) {
    HYDRA_CHECK(k >= 0 && k < n_heads, "--head-data ", k, "=...: head ", k, " is out of range (the model has ",
                n_heads, " heads)");
    HYDRA_CHECK(!files.empty(), "--head-data ", k, "=: no file given");
  }
  if (options_.judge) {
    options_.judge->validate(n_heads);
    HYDRA_CHECK(options_.train_heads.empty() || options_.train_heads == std::vector<int64_t>{options_.judge->judge_head},
                "--train-heads: under the uncertainty objective only the judge head (", options_.judge->judge_head,
                ") trains");
    options_.train_heads = {options_.judge->judge_head};
  }
  if (options_.train_heads.empty()) {
    for (int64_t k = 0; k < n_heads; ++k) trained_heads_.push_back(k);
  } else {
    std::set<int64_t> seen;
    for (int64_t k : options_.train_heads) {
      HYDRA_CHECK(k >= 0 && k < n_heads, "--train-heads: head ", k, " is out of range (the model has ", n_heads,
                  " heads: 0 to ", n_heads - 1, ")");
      HYDRA_CHECK(seen.insert(k).second, "--train-heads: head ", k, " is listed twice");
    }
    trained_heads_ = options_.train_heads;
    std::sort(trained_heads_.begin(), trained_heads_.end());
  }
  if (heads_split()) {
    const int64_t n = static_cast<int64_t>(trained_heads_.size());
    HYDRA_CHECK(n >= ranks_, "--parallel heads: ", n, " trained head(s) cannot be split over ", ranks_,
                " MPI ranks (each rank needs at least one head); use fewer ranks or --parallel data");
    // Contiguous runs, the first n % P ranks one head longer.
    for (int64_t i = 0; i < n; ++i) head_owner_[trained_heads_[i]] = 0;
    int64_t i = 0;
    for (int r = 0; r < ranks_; ++r)
      for (int64_t c = 0; c < n / ranks_ + (r < n % ranks_ ? 1 : 0); ++c) head_owner_[trained_heads_[i++]] = r;
  }
  if (options_.resume) {
    HYDRA_CHECK(!list_checkpoints(options_.out_dir).empty(), "--resume: nothing to resume: ", options_.out_dir,
                " has no checkpoint (", (fs::path(options_.out_dir) / kCheckpointsDir).string(), " is missing or empty)");
  } else {
    HYDRA_CHECK(!holds_a_run(options_.out_dir), "--out ", options_.out_dir,
                " already holds a training run (use --resume to continue it, or another --out)");
  }

  // A resumed run continues from its newest checkpoint's model; a new one from the model directory.
  std::optional<Checkpoint> checkpoint;
  if (options_.resume) checkpoint = load_checkpoint(list_checkpoints(options_.out_dir).back().second);
  auto load_model = [&] {
    // In memory, not views of the file: every step writes the weights (hydra/model_dir.h).
    model_ = checkpoint ? std::move(checkpoint->model)
                        : load_model_dir(options_.model_dir, DType::Float32, WeightPlacement::InMemory);
  };
  // The judge's data comes out of the model (pass 1, train/judge.h), so it needs the model first;
  // otherwise the data is read and checked before the model (the cheaper failures first).
  data_config_ = config;
  if (options_.judge) load_model();
  setup_data();
  if (options_.epochs > 0) {
    int64_t largest = 0;
    for (const Group& g : groups_) largest = std::max(largest, g.stream->size());
    const double items = options_.epochs * static_cast<double>(largest);
    options_.steps = std::max<int64_t>(
        1, static_cast<int64_t>(std::ceil(items / static_cast<double>(options_.batch * micro_batches_per_step()))));
  }
  schedule_ = {options_.schedule, options_.lr, options_.warmup, options_.steps, options_.min_lr_ratio};
  schedule_.validate();
  setup_identity();

  if (!options_.judge) load_model();
  if (checkpoint)
    resume_from(*checkpoint);
  else
    setup_trainable();
}

Trainer::~Trainer() = default;

void Trainer::setup_data() {
  const int64_t V = data_config_.base_config.vocab_size, N = data_config_.n_heads;
  const int64_t T = options_.seq;
  const int64_t stride = options_.data_order == DataOrder::Sequential ? T : T + 1;
  std::unique_ptr<io::Tokenizer> tokenizer;
  SftOptions sft_opts;
  sft_opts.seq = T;
  sft_opts.append_eos = options_.sft_eos;
  sft_opts.truncate_left = options_.truncate_left;
  if (sft_) tokenizer = std::make_unique<io::Tokenizer>(io::Tokenizer::load(options_.tokenizer));

  auto load = [&](const std::vector<std::string>& paths, int64_t window_stride, int64_t max_tokens) -> std::shared_ptr<const Dataset> {
    if (sft_) {
      HYDRA_CHECK(paths.size() == 1, "SFT data is one JSON Lines file per source, got ", paths.size(), " files");
      return SftDataset::load(paths[0], *tokenizer, sft_opts, V);
    }
    return std::make_shared<TokenWindows>(open_token_files(paths, options_, V), T, window_stride, max_tokens);
  };
  const std::vector<std::string>& main_paths = sft_ ? std::vector<std::string>{options_.sft} : options_.data;
  if (options_.judge) {
    // Pass 1 of every row, once: the answer head's answers and hidden states (train/judge.h).
    const JudgeOptions& j = *options_.judge;
    std::tie(judge_id_a_, judge_id_b_) = judge_token_ids(*tokenizer, j, V);
    auto judge_data = [&](const std::string& path) {
      return std::make_shared<JudgeDataset>(prepare_judge_examples(*model_, path, *tokenizer, j, T), path,
                                            data_config_.base_config.d_model);
    };
    std::shared_ptr<const Dataset> rows = judge_data(options_.sft);
    groups_.push_back({"judge", {j.judge_head},
                       std::make_unique<DataStream>(rows, 0, rows->size(), options_.data_order, mix64(options_.seed)) });
    if (!options_.val.empty()) {
      HYDRA_CHECK(options_.val.size() == 1, "--val: the uncertainty objective reads one JSON Lines file");
      eval_data_ = judge_data(options_.val[0]);
    }
    data_files_ = {describe_data_file(options_.sft), describe_data_file(options_.tokenizer)};
    return;
  }

  // Which trained heads read the common data, and which their own.
  std::vector<int64_t> shared_heads;
  for (int64_t k : trained_heads_)
    if (!options_.head_data.count(k)) shared_heads.push_back(k);
  std::shared_ptr<const Dataset> main;
  HYDRA_CHECK(shared_heads.empty() || !main_paths.empty(), "train: head(s) ", join_ints(shared_heads),
              " have no data: give --data, or --head-data K=PATH for each trained head");
  if (!shared_heads.empty()) main = load(main_paths, stride, 0);
  const uint64_t seed = options_.seed;
  if (options_.shard_by_head) {
    // Shard k of N (over every head of the model, so head k's data does not depend on --train-heads).
    for (int64_t k : shared_heads) {
      HYDRA_CHECK(main->size() >= N, "--shard-by-head: the data holds ", main->size(), " items, fewer than the ", N,
                  " heads to split it between (", main->describe(), ")");
      auto [begin, end] = shard_range(main->size(), N, k);
      groups_.push_back({"head" + std::to_string(k), {k},
                         std::make_unique<DataStream>(main, begin, end, options_.data_order, mix64(seed ^ mix64(k + 1)))});
    }
  } else if (!shared_heads.empty()) {
    groups_.push_back({"shared", shared_heads,
                       std::make_unique<DataStream>(main, 0, main->size(), options_.data_order, mix64(seed))});
  }
  for (int64_t k : trained_heads_) {
    auto it = options_.head_data.find(k);
    if (it == options_.head_data.end()) continue;
    std::shared_ptr<const Dataset> own = load(it->second, stride, 0);
    groups_.push_back({"head" + std::to_string(k), {k},
                       std::make_unique<DataStream>(own, 0, own->size(), options_.data_order, mix64(seed ^ mix64(k + 1)))});
  }
  if (!options_.val.empty()) eval_data_ = load(options_.val, T, options_.eval_tokens);

  // The files trained on, hashed once, for the checkpoints' manifests (a resume checks them).
  std::vector<std::string> all = main_paths;
  for (const auto& [k, files] : options_.head_data) all.insert(all.end(), files.begin(), files.end());
  if (sft_) all.push_back(options_.tokenizer);
  for (const std::string& p : all) data_files_.push_back(describe_data_file(p));
}

void Trainer::setup_trainable() {
  nn::Module& m = *model_;
  if (options_.lora) {
    if (!has_lora_adapters(*model_)) {
      // A fresh run: adapters on the trained heads, A drawn from a stream of the run's seed.
      HYDRA_CHECK(!options_.resume, "--resume: the checkpoint has no LoRA adapters but this run asks for them");
      Generator init_gen(mix64(options_.seed ^ 0x10A1u));
      add_lora_adapters(*model_, *options_.lora, trained_heads_, init_gen);
    } else {
      // The model came with adapters (a resumed run, or a LoRA model trained further): the same ones.
      const LoraInfo have = *lora_info(*model_);
      const nn::LoraConfig& want = *options_.lora;
      HYDRA_CHECK(have.config.rank == want.rank && have.config.effective_alpha() == want.effective_alpha() &&
                      have.config.dropout == want.dropout && have.config.targets == want.targets &&
                      have.heads == trained_heads_,
                  "train: the model's LoRA adapters (rank ", have.config.rank, ", alpha ", have.config.effective_alpha(),
                  ", on heads ", join_ints(have.heads), ") differ from the ones asked for (rank ", want.rank, ", alpha ",
                  want.effective_alpha(), ", on heads ", join_ints(trained_heads_),
                  "); merge them first (hydra merge-lora) to train new ones");
    }
    set_only_lora_trainable(*model_);
  } else {
    HYDRA_CHECK(!has_lora_adapters(*model_), "train: ", options_.model_dir,
                " has LoRA adapters; fold them into the weights first (hydra merge-lora) or keep training them "
                "with --lora-rank");
    if (options_.train_heads.empty()) {
      m.set_trainable("*", true);
    } else {
      m.set_trainable("*", false);
      for (int64_t k : trained_heads_) m.set_trainable("heads." + std::to_string(k) + ".*", true);
    }
  }
  for (const std::string& pattern : options_.freeze) m.set_trainable(pattern, false);
  trunk_trains_ = false;
  for (auto& [name, t] : m.named_parameters())
    if (name.starts_with("trunk.") && t->requires_grad()) trunk_trains_ = true;
  trainable_ = std::make_unique<TrainableParameters>(m);
  optimizer_ = std::make_unique<Optimizer>(options_.optimizer, *trainable_);
  setup_parallel();
}

// Every data group runs the trunk once per micro-batch, and each of its heads once.
std::vector<int> Trainer::uses_per_micro_batch() const {
  std::map<int64_t, int> head_runs;
  for (const Group& g : groups_)
    for (int64_t k : g.heads) ++head_runs[k];
  return train::uses_per_micro_batch(*trainable_, static_cast<int>(groups_.size()), head_runs);
}

int Trainer::owner_of_head(int64_t k) const {
  auto it = head_owner_.find(k);
  return it == head_owner_.end() ? 0 : it->second;
}

// Under head parallelism: which rank owns each trainable parameter (heads.<k>.*: head k's owner), and
// this rank updates only its own and the unowned ones.
void Trainer::setup_parallel() {
  const auto& list = trainable_->list();
  param_owner_.assign(list.size(), -1);
  if (data_split()) {
    // $HYDRA_MPI_OVERLAP=0 sends the whole slab after backward instead (to measure what overlap saves).
    const char* overlap = std::getenv("HYDRA_MPI_OVERLAP");
    if (!overlap || std::string(overlap) != "0") buckets_ = std::make_unique<GradientBuckets>(*trainable_);
  }
  if (!heads_split()) return;
  std::vector<bool> active(list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string& name = list[i].name;
    if (const int64_t k = head_of_parameter(name); k >= 0) {
      // A head that does not train has no trainable parameter (LoRA adapters go on trained heads only).
      HYDRA_CHECK(head_owner_.count(k), "--parallel heads: parameter '", name, "' trains but head ", k,
                  " is not a trained head");
      param_owner_[i] = head_owner_.at(k);
    }
    active[i] = param_owner_[i] < 0 || param_owner_[i] == rank_;
  }
  trainable_->set_active(active);
}

void Trainer::share_heads() {
  if (!heads_split()) return;
  const auto& list = trainable_->list();
  std::vector<Tensor> moments = optimizer_->state_slabs();
  for (size_t i = 0; i < list.size(); ++i) {
    if (param_owner_[i] < 0) continue;  // the same on every rank already
    const Tensor& p = list[i].param;
    dist::broadcast(p.data<float>(), static_cast<size_t>(p.numel()) * sizeof(float), param_owner_[i]);
    for (const Tensor& slab : moments) {
      Tensor v = trainable_->view_in(slab, i);
      dist::broadcast(v.data<float>(), static_cast<size_t>(v.numel()) * sizeof(float), param_owner_[i]);
    }
  }
}

void Trainer::setup_identity() {
  const TrainOptions& o = options_;
  json head_data = json::object();
  for (const auto& [k, files] : o.head_data) head_data[std::to_string(k)] = files;
  identity_ = {{"model_config", data_config_.to_json()},
               {"objective", o.judge ? "uncertainty" : sft_ ? "sft" : "next-token"},
               {"data", o.data},
               {"head_data", head_data},
               {"shard_by_head", o.shard_by_head},
               {"data_order", data_order_name(o.data_order)},
               {"token_dtype", io::token_dtype_name(o.token_dtype)},
               {"sft", o.sft},
               {"sft_eos", o.sft_eos},
               {"truncate", o.truncate_left ? "left" : "error"},
               {"batch", o.batch},
               {"seq", o.seq},
               {"grad_accum", o.grad_accum},
               {"total_steps", schedule_.total_steps},
               {"optimizer", o.optimizer.to_json()},
               {"schedule", schedule_.to_json()},
               {"clip", o.clip},
               {"freeze", o.freeze},
               {"train_heads", trained_heads_},
               {"seed", o.seed},
               {"judge", o.judge ? o.judge->to_json() : json(nullptr)},
               {"lora", o.lora ? json{{"rank", o.lora->rank}, {"alpha", o.lora->effective_alpha()},
                                      {"dropout", o.lora->dropout}, {"targets", o.lora->targets}}
                               : json(nullptr)},
               // Which micro-batches (data) or heads (heads) a rank computes depends on both.
               {"ranks", ranks_},
               {"parallel", ranks_ > 1 ? parallel_mode_name(o.parallel) : "none"}};
}

void Trainer::resume_from(Checkpoint& c) {
  const json& saved = c.state.run_config;
  HYDRA_CHECK(saved.is_object(), c.path, ": the checkpoint has no run arguments to compare with");
  // Checkpoints from before multi-process training ran in one process.
  const int64_t saved_ranks = saved.value("ranks", int64_t{1});
  HYDRA_CHECK(saved_ranks == ranks_, "--resume: ", c.path, " was trained by ", saved_ranks, " process(es) (MPI ranks) and this run has ",
              ranks_, "; resume it with the same number (", saved_ranks == 1 ? "without mpirun" : "mpirun -np " + std::to_string(saved_ranks),
              "): which micro-batches or heads a rank computes depends on it");
  const std::string saved_parallel = saved.value("parallel", std::string("none"));
  HYDRA_CHECK(saved_parallel == identity_.at("parallel").get<std::string>(), "--resume: ", c.path,
              " was trained with --parallel ", saved_parallel, ", this run asks for --parallel ",
              identity_.at("parallel").get<std::string>());
  for (const auto& [key, value] : identity_.items()) {
    if ((key == "ranks" || key == "parallel") && !saved.contains(key)) continue;
    HYDRA_CHECK(saved.contains(key), "--resume: ", c.path, " was saved without '", key,
                "' (made by another version of Hydra?)");
    HYDRA_CHECK(saved.at(key) == value, "--resume: ", flag_of(key), " differs from the run being resumed: it ran with ",
                saved.at(key).dump(), ", this run asks for ", value.dump());
  }
  // The data files: same paths and, still on disk, the same bytes.
  HYDRA_CHECK(c.manifest.data_files.size() == data_files_.size(), "--resume: the run trained on ",
              c.manifest.data_files.size(), " data files, this run gives ", data_files_.size());
  for (size_t i = 0; i < data_files_.size(); ++i)
    HYDRA_CHECK(c.manifest.data_files[i] == data_files_[i], "--resume: data file ", data_files_[i].path,
                " differs from the one the run trained on (", c.manifest.data_files[i].path, ", sha256 ",
                c.manifest.data_files[i].sha256, ")");

  setup_trainable();
  optimizer_->load_state(c.state);
  HYDRA_CHECK(optimizer_->steps_taken() == c.state.step, c.path, ": the optimizer has taken ",
              optimizer_->steps_taken(), " steps but the checkpoint is at step ", c.state.step);
  for (Group& g : groups_) {
    HYDRA_CHECK(c.state.data_loader.contains(g.name), c.path, ": the checkpoint has no position for data stream '",
                g.name, "'");
    g.stream->restore(c.state.data_loader.at(g.name), c.path + " data stream '" + g.name + "'");
  }
  step_ = c.state.step;
  tokens_seen_ = c.state.tokens_seen;
  auto rng = c.state.rng.find("lora_dropout");
  HYDRA_CHECK(rng != c.state.rng.end(), c.path, ": the training state has no 'lora_dropout' random stream");
  dropout_gen_.set_state(rng->second.seed, rng->second.offset);
  const json& p = c.state.progress;
  elapsed_before_ = p.value("elapsed_s", 0.0);
  best_val_loss_ = p.value("best_val_loss", 0.0);
  best_step_ = p.value("best_step", int64_t{-1});
  evals_since_best_ = p.value("evals_since_best", int64_t{0});
}

}  // namespace hydra::train
