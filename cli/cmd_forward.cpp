// `hydra forward`: run a model directory on token ids and write the logits as .npy.
//
//   hydra forward models/tiny --tokens "1,2,3;4,5,6" --heads 0,2 --out logits.npy
//   hydra forward models/tiny --tokens-file ids.npy --last-token-only --out logits.npy
//   hydra forward models/tiny --tokens "5,6,7" --hidden-heads 0 --hidden-out hidden.npy --out logits.npy
//
// Logits are (n_selected, batch, seq_out, vocab) float32; hidden states (with --hidden-heads, through
// residual_forward) are (len(hidden_heads), batch, seq_out, d_model). The outputs are all-or-nothing:
// two outputs naming one file, or an output that is an input, are refused before anything runs, and
// both files are written in full before either replaces what was there.
#include <iostream>
#include <sstream>

#include "autograd/ops.h"
#include "cli/command.h"
#include "hydra/model_dir.h"
#include "io/atomic_file.h"
#include "io/npy.h"

namespace hydra::cli {

namespace {

// "12" -> 12, or an error naming `what` and the text.
int64_t parse_int(const std::string& text, const std::string& what) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  HYDRA_CHECK(used > 0 && used == text.size(), what, ": '", text, "' is not an integer");
  return v;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(s);
  while (std::getline(in, part, sep)) parts.push_back(part);
  if (!s.empty() && s.back() == sep) parts.push_back("");
  return parts;
}

// "1,2,3;4,5,6" -> int64 (2, 3). Rows separated by ';' must have equal length.
Tensor parse_tokens(const std::string& text) {
  std::vector<std::vector<int64_t>> rows;
  for (const std::string& row : split(text, ';')) {
    HYDRA_CHECK(!row.empty(), "--tokens: row ", rows.size(), " is empty (rows are separated by ';', ids by ',')");
    std::vector<int64_t> ids;
    for (const std::string& id : split(row, ',')) ids.push_back(parse_int(id, "--tokens"));
    HYDRA_CHECK(rows.empty() || ids.size() == rows[0].size(), "--tokens: row ", rows.size(), " has ", ids.size(),
                " ids but row 0 has ", rows[0].size(), " (every row must have the same length)");
    rows.push_back(ids);
  }
  HYDRA_CHECK(!rows.empty(), "--tokens: no token ids given");
  std::vector<int64_t> flat;
  for (const auto& r : rows) flat.insert(flat.end(), r.begin(), r.end());
  return from_vector(flat, {static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});
}

// "0,2" -> {0, 2}. An empty list is an error, as in the API (every head is what leaving --heads out means).
std::vector<int64_t> parse_list(const std::string& text, const std::string& what) {
  HYDRA_CHECK(!text.empty(), what, ": empty list; give at least one head index");
  std::vector<int64_t> out;
  for (const std::string& part : split(text, ',')) out.push_back(parse_int(part, what));
  return out;
}

// Token ids as int64 (B, T). Their range is checked once, by the model's embedding (nn/embedding.h),
// whose error names the id, its (row, position) and the vocabulary.
Tensor token_ids(Tensor ids, const std::string& source) {
  HYDRA_CHECK(ids.dtype() == DType::Int32 || ids.dtype() == DType::Int64, source, ": token ids must be integers, got ",
              dtype_name(ids.dtype()));
  if (ids.dim() == 1) ids = unsqueeze(ids, 0);
  HYDRA_CHECK(ids.dim() == 2 && ids.numel() > 0, source, ": expected token ids of shape (batch, seq), got ",
              shape_str(ids.shape()));
  return cast(ids, DType::Int64);
}

}  // namespace

Command add_forward_command(CLI::App& hydra) {
  struct Options {
    std::string model, tokens, tokens_file, heads, residual, hidden_heads, hidden_out, out, dtype = "fp32";
    bool last_token_only = false;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* app = hydra.add_subcommand("forward", "Run a model on token ids and write the logits (.npy)");
  app->add_option("model", opt->model, "Model directory (config.json + model.safetensors)")->required();
  auto* tokens = app->add_option("--tokens", opt->tokens, "Token ids: \"1,2,3;4,5,6\" (rows of equal length)");
  auto* file = app->add_option("--tokens-file", opt->tokens_file, "Token ids as an integer .npy, (seq) or (batch, seq)");
  tokens->excludes(file);
  auto* heads_opt = app->add_option("--heads", opt->heads, "Heads to run, e.g. 0,2 (default: all; duplicates allowed)");
  app->add_flag("--last-token-only", opt->last_token_only, "Only the last position's logits");
  app->add_option("--residual", opt->residual, "A (batch, seq, d_model) .npy added once to the trunk output");
  auto* hh = app->add_option("--hidden-heads", opt->hidden_heads, "Also write these heads' final hidden states");
  auto* ho = app->add_option("--hidden-out", opt->hidden_out, "Where --hidden-heads' states go (.npy)");
  hh->needs(ho);
  ho->needs(hh);
  app->add_option("--out", opt->out, "Output logits .npy")->required();
  add_dtype_option(app, opt->dtype, "Weights in memory: fp32 (default) or bf16 (bfloat16 matrices, half the bytes)");
  return {app, [opt, heads_opt, hh] {
            NoGradGuard no_grad;  // inference: record no graph
            HYDRA_CHECK(!opt->tokens.empty() || !opt->tokens_file.empty(), "forward: give --tokens or --tokens-file");
            HYDRA_CHECK(opt->residual.empty() || hh->count() == 0,
                        "forward: --residual and --hidden-heads cannot be combined (residual_forward takes no residual)");
            std::vector<io::NamedPath> outputs = {{"--out", opt->out}};
            if (!opt->hidden_out.empty()) outputs.push_back({"--hidden-out", opt->hidden_out});
            std::vector<io::NamedPath> inputs = {{"config.json", opt->model + "/config.json"},
                                                 {"model.safetensors", opt->model + "/model.safetensors"}};
            if (!opt->tokens_file.empty()) inputs.push_back({"--tokens-file", opt->tokens_file});
            if (!opt->residual.empty()) inputs.push_back({"--residual", opt->residual});
            io::check_distinct_outputs(outputs, inputs);
            // Read and check every input before loading the model or writing anything.
            HydraTransformerConfig config = load_model_config(opt->model);
            const int64_t C = config.base_config.d_model;
            Tensor ids = opt->tokens.empty() ? token_ids(io::load_npy(opt->tokens_file), opt->tokens_file)
                                             : token_ids(parse_tokens(opt->tokens), "--tokens");
            // Given (even as '') means a list; left out means every head.
            HeadIndices heads;
            if (heads_opt->count() > 0) heads = parse_list(opt->heads, "--heads");
            std::vector<int64_t> hidden_heads;
            if (hh->count() > 0) hidden_heads = parse_list(opt->hidden_heads, "--hidden-heads");
            std::optional<Tensor> residual;
            if (!opt->residual.empty()) {
              Tensor r = io::load_npy(opt->residual);
              Shape want{ids.size(0), ids.size(1), C};
              HYDRA_CHECK(r.shape() == want, opt->residual, ": residual shape ", shape_str(r.shape()),
                          " does not match (batch, seq, d_model) = ", shape_str(want));
              residual = cast(r, DType::Float32);
            }
            auto model = load_model_dir(opt->model, parse_dtype_option(opt->dtype));
            if (hh->count() > 0) {
              auto [logits, hidden] = model->residual_forward(ids, hidden_heads, heads, opt->last_token_only);
              io::AtomicFile logits_out(opt->out), hidden_out(opt->hidden_out);
              io::save_npy(logits_out, logits);
              io::save_npy(hidden_out, hidden);
              io::commit_together({&logits_out, &hidden_out});
              std::cout << "forward: logits " << shape_str(logits.shape()) << " -> " << opt->out << ", hidden "
                        << shape_str(hidden.shape()) << " -> " << opt->hidden_out << "\n";
            } else {
              Tensor logits = model->forward(ids, residual, heads, opt->last_token_only);
              io::save_npy(opt->out, logits);
              std::cout << "forward: logits " << shape_str(logits.shape()) << " -> " << opt->out << "\n";
            }
            return 0;
          }};
}

}  // namespace hydra::cli
