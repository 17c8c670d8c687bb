// `hydra eval`: evaluate a model directory on token data or SFT pairs (train/evaluate.h).
//
//   hydra eval runs/tiny --data val.bin --seq 256
//   hydra eval runs/sft --sft qa.jsonl --tokenizer tokenizer.json --json
//   hydra eval runs/judge --objective uncertainty --sft qa.jsonl --tokenizer tokenizer.json --judge-head 3
//       --answer-head 0 --reliability-svg judge.svg
//
// Prints each head's loss and perplexity, the loss of the mean-logits ensemble and of the product of
// experts, the heads' disagreement and, for SFT data, the exact-match accuracy of each head's and the
// ensemble's greedy answer. Token data is read in windows of seq + 1 ids that predict every token once
// (stride seq), from the start of the data: --eval-tokens and --max-batches limit how much.
#include <cstdio>
#include <cmath>
#include <iostream>
#include <sstream>

#include "autograd/grad_mode.h"
#include "cli/command.h"
#include "hydra/model_dir.h"
#include "io/tokenizer.h"
#include "train/evaluate.h"
#include "train/judge.h"
#include "train/sft_data.h"

namespace hydra::cli {

Command add_eval_command(CLI::App& hydra) {
  struct Options {
    std::string model, sft, tokenizer, token_dtype = "auto", heads, truncate = "error", dtype = "fp32";
    std::vector<std::string> data;
    int64_t batch = 8, seq = 256, max_batches = 0, eval_tokens = 0;
    bool json = false, sft_eos = false;
    std::string objective, judge_tokens = "A,B", svg = "reliability.svg";
    train::JudgeOptions judge;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* app = hydra.add_subcommand("eval", "Evaluate a model's heads and their combinations on token data or SFT pairs");
  app->add_option("model", opt->model, "Model directory")->required();
  add_dtype_option(app, opt->dtype, "Weights in memory: fp32 (default) or bf16 (bfloat16 matrices, half the bytes)");
  app->add_option("--data", opt->data, "Token file(s), read as one stream in order");
  app->add_option("--token-dtype", opt->token_dtype, "Id type of raw token files: auto, uint16 or uint32");
  app->add_option("--sft", opt->sft, "A JSON Lines file of {\"prompt\", \"answer\"} (instead of --data)");
  app->add_option("--tokenizer", opt->tokenizer, "tokenizer.json for --sft");
  app->add_flag("--sft-eos", opt->sft_eos, "Append the end-of-text token to each answer (as training did)");
  app->add_option("--truncate", opt->truncate, "A row longer than --seq: error (default) or left");
  app->add_option("--batch", opt->batch, "Sequences per forward pass (default 8)")->check(integer_in_range(1, 1 << 20));
  app->add_option("--seq", opt->seq, "Tokens per window (default 256)")->check(integer_in_range(1, 1 << 20));
  app->add_option("--max-batches", opt->max_batches, "Stop after K batches (default: all)")
      ->check(integer_in_range(1, int64_t{1} << 40));
  app->add_option("--eval-tokens", opt->eval_tokens, "Only the first N tokens of --data (default: all)")
      ->check(integer_in_range(2, int64_t{1} << 50));
  app->add_option("--heads", opt->heads, "Heads to evaluate, e.g. 0,2 (default: all)");
  app->add_flag("--json", opt->json, "Print the result as JSON");
  app->add_option("--objective", opt->objective,
                  "uncertainty: score a judge head's verdicts on the answer head's answers to --sft rows");
  app->add_option("--judge-head", opt->judge.judge_head, "uncertainty: the judge head");
  app->add_option("--answer-head", opt->judge.answer_head, "uncertainty: the head whose answers are judged");
  app->add_option("--max-answer-tokens", opt->judge.max_answer_tokens, "uncertainty: greedy answer length (default 1)")
      ->check(integer_in_range(1, 4096));
  app->add_option("--judge-tokens", opt->judge_tokens, "uncertainty: the 'right' and 'wrong' tokens (default A,B)");
  app->add_option("--judge-template", opt->judge.judge_template, "uncertainty: the judge's text, with {prompt} and {answer}");
  app->add_option("--reliability-svg", opt->svg, "uncertainty: where the reliability diagram goes (default reliability.svg)");
  return {app, [opt] {
            NoGradGuard no_grad;  // nothing here needs a gradient: record no graph
            HYDRA_CHECK(opt->data.empty() != opt->sft.empty(), opt->data.empty() ? "eval: give --data or --sft"
                                                                                 : "eval: --data and --sft cannot be combined");
            HYDRA_CHECK(opt->sft.empty() || !opt->tokenizer.empty(), "eval: --sft needs --tokenizer");
            HYDRA_CHECK(opt->truncate == "error" || opt->truncate == "left", "--truncate: expected error or left, got '",
                        opt->truncate, "'");
            const HydraTransformerConfig config = load_model_config(opt->model);
            const int64_t V = config.base_config.vocab_size;
            HYDRA_CHECK(opt->objective.empty() || opt->objective == "uncertainty",
                        "--objective: hydra eval takes uncertainty (or nothing), got '", opt->objective, "'");
            if (opt->objective == "uncertainty") {
              HYDRA_CHECK(!opt->sft.empty(), "eval --objective uncertainty reads prompt/answer rows: give --sft");
              HYDRA_CHECK(opt->judge.judge_head >= 0 && opt->judge.answer_head >= 0,
                          "eval --objective uncertainty needs --judge-head U and --answer-head A");
              opt->judge.parse_tokens(opt->judge_tokens);
              opt->judge.validate(config.n_heads);
              const io::Tokenizer tokenizer = io::Tokenizer::load(opt->tokenizer);
              const auto [id_a, id_b] = train::judge_token_ids(tokenizer, opt->judge, V);
              auto model = load_model_dir(opt->model, parse_dtype_option(opt->dtype));
              train::JudgeDataset rows(train::prepare_judge_examples(*model, opt->sft, tokenizer, opt->judge, opt->seq),
                                       opt->sft, config.base_config.d_model);
              const train::JudgeEval e =
                  train::evaluate_judge(*model, rows, opt->judge.judge_head, id_a, id_b, opt->batch);
              const std::string why = train::plot_reliability(opt->svg, e);
              if (opt->json) {
                nlohmann::json j = e.to_json();
                j["reliability_svg"] = why.empty() ? nlohmann::json(opt->svg) : nlohmann::json(nullptr);
                std::cout << j.dump(2) << "\n";
                return 0;
              }
              std::printf("judge head %lld on head %lld's answers to %s (%lld rows)\n  Brier %.4f (a constant "
                          "predictor: %.4f)\n  answer head right on %.4f\n  AUROC %.4f\n  ECE %.4f (10 bins)\n",
                          static_cast<long long>(opt->judge.judge_head), static_cast<long long>(opt->judge.answer_head),
                          opt->sft.c_str(), static_cast<long long>(e.rows), e.brier, e.accuracy * (1 - e.accuracy),
                          e.accuracy, e.auroc, e.ece);
              std::printf(why.empty() ? "  reliability diagram: %s\n" : "  reliability diagram not drawn: %s\n",
                          why.empty() ? opt->svg.c_str() : why.c_str());
              return 0;
            }
            std::vector<int64_t> heads;
            if (opt->heads.empty()) {
              for (int64_t k = 0; k < config.n_heads; ++k) heads.push_back(k);
            } else {
              std::stringstream in(opt->heads);
              std::string part;
              while (std::getline(in, part, ',')) {
                size_t used = 0;
                long long k = -1;
                try {
                  k = std::stoll(part, &used);
                } catch (const std::exception&) {
                  used = 0;
                }
                HYDRA_CHECK(used > 0 && used == part.size() && k >= 0 && k < config.n_heads, "--heads: '", part,
                            "' is not a head of this model (0 to ", config.n_heads - 1, ")");
                heads.push_back(k);
              }
              HYDRA_CHECK(!heads.empty(), "--heads: empty list");
            }
            // Read and check the data before loading the model.
            std::shared_ptr<const train::Dataset> data;
            if (!opt->sft.empty()) {
              train::SftOptions so;
              so.seq = opt->seq;
              so.append_eos = opt->sft_eos;
              so.truncate_left = opt->truncate == "left";
              data = train::SftDataset::load(opt->sft, io::Tokenizer::load(opt->tokenizer), so, V);
            } else {
              io::TokenFileOptions to;
              to.dtype = io::parse_token_dtype(opt->token_dtype);
              to.vocab_size = V;
              std::vector<io::TokenFile> files;
              for (const std::string& p : opt->data) {
                files.push_back(io::open_token_file(p, to));
                files.back().validate_tokens(V);
              }
              data = std::make_shared<train::TokenWindows>(std::move(files), opt->seq, opt->seq, opt->eval_tokens);
            }
            auto model = load_model_dir(opt->model, parse_dtype_option(opt->dtype));
            train::EvalOptions eo;
            eo.batch_size = opt->batch;
            eo.max_batches = opt->max_batches;
            eo.exact_match = !opt->sft.empty();
            const train::EvalResult r = train::evaluate(*model, *data, heads, eo);
            if (opt->json) {
              nlohmann::json j = r.to_json();
              j["data"] = data->describe();
              std::cout << j.dump(2) << "\n";
              return 0;
            }
            std::printf("eval %s on %s\n  %lld positions in %lld batches\n", opt->model.c_str(), data->describe().c_str(),
                        static_cast<long long>(r.positions), static_cast<long long>(r.batches));
            for (size_t i = 0; i < heads.size(); ++i) {
              std::printf("  head %lld: loss %.4f  perplexity %.3f", static_cast<long long>(heads[i]), r.head_loss[i],
                          std::exp(r.head_loss[i]));
              if (r.has_exact_match) std::printf("  exact match %.4f", r.head_exact_match[i]);
              std::printf("\n");
            }
            std::printf("  ensemble (mean logits): loss %.4f  perplexity %.3f", r.ensemble_loss, std::exp(r.ensemble_loss));
            if (r.has_exact_match) std::printf("  exact match %.4f", r.ensemble_exact_match);
            std::printf("\n  product of experts:     loss %.4f  perplexity %.3f\n  disagreement: %.4f of positions\n",
                        r.poe_loss, std::exp(r.poe_loss), r.disagreement);
            return 0;
          }};
}

}  // namespace hydra::cli
