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

namespace hydra::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Trainer::Group {
  std::string name;            // "shared" or "head<k>": the stream's key in the checkpoint
  std::vector<int64_t> heads;  // the trained heads reading this stream's batches
  std::unique_ptr<DataStream> stream;
};

namespace {

constexpr const char* kCheckpointsDir = "checkpoints";

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string join_ints(const std::vector<int64_t>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(v[i]);
  }
  return s;
}

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
    model_ = checkpoint ? std::move(checkpoint->model) : load_model_dir(options_.model_dir);
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
    if (name.starts_with("heads.")) {
      const int64_t k = std::stoll(name.substr(6, name.find('.', 6) - 6));
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
      // The run's val loss: the mean over the trained heads (the Brier score for the judge). Rank 0
      // evaluates; every rank takes its verdict (early stopping, the best step).
      share_heads();
      double val = 0;
      if (!writer) {
      } else if (options_.judge) {
        const JudgeEval e = evaluate_judge();
        evals->append({std::to_string(step_), log_number(e.brier), log_number(e.accuracy), log_number(e.auroc),
                       log_number(e.ece)});
        observer.on_judge_eval(step_, e);
        val = e.brier;
        const std::string why = plot_reliability((fs::path(options_.out_dir) / "reliability.svg").string(), e);
        if (!why.empty() && !plot_warned) observer.on_message("reliability.svg not drawn: " + why);
      } else {
        const EvalResult e = evaluate();
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
