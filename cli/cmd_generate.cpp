// `hydra generate`: continue a prompt with a model directory's heads (hydra/generate.h).
//
//   hydra generate runs/tiny --prompt "In the beginning" --tokenizer tokenizer.json --max-new-tokens 64
//   hydra generate runs/tiny --tokens 1,2,3 --combine poe --heads 0,2 --temperature 0
//   hydra generate runs/tiny --prompt "..." --tokenizer t.json --combine speculative --gamma 4 --json
//   hydra generate runs/judge --prompt "7+5=" --tokenizer t.json --combine head:0 --temperature 0 --judge-head 3
//
// Without --json the generated text (not the prompt) streams to stdout as it is made, then a newline,
// and the summary (prefill and decode tokens/s, the acceptance rate of speculative decoding) goes to
// stderr. With --json stdout gets one JSON object per generated token, then one summary object:
//   {"type": "token", "index", "id", "text", "prob", "entropy", "top_margin", "head_argmax": [...],
//    "vote_margin"[, speculative: "drafted", "accepted" (both true for an accepted proposal of the draft,
//    both false for the token drawn after a rejection), "rejected_draft" (then: the proposal it replaced)]}
//   {"type": "summary", "text", "ids", "stop_reason", "prompt_tokens", "generated_tokens", "heads",
//    "prefill_tokens", "prefill_seconds", "prefill_tokens_per_s", "decode_seconds", "decode_tokens_per_s",
//    speculative: "draft_head", "verifier_heads", "gamma", "drafted", "accepted", "acceptance_rate",
//    --judge-head: "judge_head", "answer_head", "judge_score"}
// head_argmax lists the heads of "heads" in order. --stop TEXT (repeatable) ends generation when the
// text appears; the text is cut before it. --stop-at-eos ends it at the tokenizer's <|endoftext|>,
// which is not printed. Ids >= the tokenizer's size (a padded vocabulary) are never generated.
//
// --judge-head U scores the generated text with an uncertainty head (train/judge.h, trained by `hydra
// train --objective uncertainty`): train::judge_answer, the library's one computation of the score, on
// the prompt's text and the generated text, reading head A's hidden state at the prompt's last position
// (--answer-head A; with --combine head:K, A defaults to K). To score what the judge was trained on, use
// --combine head:A --temperature 0 and --max-new-tokens equal to training's --max-answer-tokens. Without
// --heads, the judge head takes no part in generating.
#include <cmath>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "hydra/generate.h"
#include "hydra/model_dir.h"
#include "io/tokenizer.h"
#include "io/utf8.h"
#include "tensor/gemm_bf16.h"
#include "train/judge.h"

namespace hydra::cli {

namespace {

constexpr const char* kEndOfText = "<|endoftext|>";

// The generated text, streamed to stdout unless `quiet`, minus what could still become a stop text.
class TextStream {
 public:
  TextStream(std::vector<std::string> stops, bool quiet) : stops_(std::move(stops)), quiet_(quiet) {}

  // Appends a token's bytes; false when a stop text has appeared (the text then ends before it).
  bool add(const std::string& bytes) {
    const size_t old_size = text_.size();
    text_ += bytes;
    size_t cut = std::string::npos;
    for (const std::string& stop : stops_) {
      const size_t from = old_size >= stop.size() ? old_size - stop.size() + 1 : 0;
      cut = std::min(cut, text_.find(stop, from));
    }
    if (cut != std::string::npos) {
      text_.resize(cut);
      print(text_.size());
      return false;
    }
    // Hold back the longest tail that is the start of some stop text.
    size_t hold = 0;
    for (const std::string& stop : stops_)
      for (size_t k = std::min(stop.size() - 1, text_.size()); k > hold; --k)
        if (text_.compare(text_.size() - k, k, stop, 0, k) == 0) {
          hold = k;
          break;
        }
    print(text_.size() - hold);
    return true;
  }
  void finish() { print(text_.size()); }
  const std::string& text() const { return text_; }

 private:
  void print(size_t upto) {
    if (quiet_ || upto <= printed_) return;
    std::fwrite(text_.data() + printed_, 1, upto - printed_, stdout);
    std::fflush(stdout);
    printed_ = upto;
  }

  std::vector<std::string> stops_;
  bool quiet_;
  std::string text_;
  size_t printed_ = 0;
};

double per_second(int64_t count, double seconds) { return seconds > 0 ? static_cast<double>(count) / seconds : 0; }

std::string dump(const nlohmann::ordered_json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

}  // namespace

Command add_generate_command(CLI::App& hydra) {
  struct Options {
    std::string model, prompt, tokenizer, tokens, combine = "mean", heads, beta, dtype = "fp32";
    std::vector<std::string> stops;
    GenerateOptions g;
    int64_t draft_head = -1;
    bool stop_at_eos = false, json = false;
    train::JudgeOptions judge;
    std::string judge_tokens = "A,B";
    std::vector<CLI::Option*> judge_only;  // options that mean nothing without --judge-head
  };
  auto opt = std::make_shared<Options>();
  GenerateOptions& g = opt->g;
  CLI::App* app = hydra.add_subcommand("generate", "Continue a prompt with the model's heads (KV-cached, batch 1)");
  app->add_option("model", opt->model, "Model directory")->required();
  add_dtype_option(app, opt->dtype, "Weights in memory: fp32 (default) or bf16 (bfloat16 matrices, half the bytes)");
  auto* prompt = app->add_option("--prompt", opt->prompt, "Prompt text (needs --tokenizer; <|endoftext|> is the special token)");
  auto* tokens = app->add_option("--tokens", opt->tokens, "Prompt token ids, e.g. 1,2,3");
  prompt->excludes(tokens);
  app->add_option("--tokenizer", opt->tokenizer, "tokenizer.json: encodes --prompt, decodes the output");
  app->add_option("--max-new-tokens", g.max_new_tokens, "Tokens to generate (default 128)")
      ->check(integer_in_range(1, int64_t{1} << 40));
  app->add_option("--max-context", g.max_context, "Longest prompt + new tokens allowed (default 4096)")
      ->check(integer_in_range(1, int64_t{1} << 40));
  app->add_option("--combine", opt->combine, "mean (default), poe, head:K or speculative");
  app->add_option("--heads", opt->heads, "Heads taking part, e.g. 0,2 (default: all)");
  app->add_option("--beta", opt->beta, "Product-of-experts weight: one for all (default 1) or one per combined head");
  app->add_option("--gamma", g.gamma, "Speculative: tokens the draft proposes per round (default 4, at most 16)")
      ->check(integer_in_range(1, kMaxGamma));
  app->add_option("--draft-head", opt->draft_head, "Speculative: the draft head (default: drawn with --seed)")
      ->check(integer_in_range(0, 1 << 20));
  app->add_option("--temperature", g.temperature, "Sampling temperature (default 0.8; 0 is greedy)");
  app->add_option("--top-k", g.top_k, "Sample from the K most probable tokens (default 0: off)")
      ->check(integer_in_range(0, int64_t{1} << 40));
  app->add_option("--top-p", g.top_p, "Sample from the most probable tokens holding P of the mass (default 1: off)");
  app->add_option("--seed", g.seed, "Seed of the sampling draws (default 0)");
  app->add_flag("--stop-at-eos", opt->stop_at_eos, "Stop at the tokenizer's <|endoftext|>");
  app->add_option("--stop", opt->stops, "Stop when this text appears (repeatable; needs --tokenizer)");
  app->add_flag("--json", opt->json, "One JSON object per token on stdout, then a summary");
  app->add_option("--judge-head", opt->judge.judge_head,
                  "Score the generated text with this uncertainty head (needs --tokenizer)")
      ->check(integer_in_range(0, 1 << 20));
  opt->judge_only = {
      app->add_option("--answer-head", opt->judge.answer_head,
                      "--judge-head: the head whose hidden state the judge reads (default: K of --combine head:K)")
          ->check(integer_in_range(0, 1 << 20)),
      app->add_option("--judge-tokens", opt->judge_tokens, "--judge-head: the 'right' and 'wrong' tokens (default A,B)"),
      app->add_option("--judge-template", opt->judge.judge_template,
                      "--judge-head: the judge's text, with {prompt} and {answer} (default: training's)")};
  return {app, [opt] {
            GenerateOptions& g = opt->g;
            HYDRA_CHECK(!opt->prompt.empty() || !opt->tokens.empty(),
                        "generate: give --prompt TEXT (with --tokenizer) or --tokens 1,2,3");
            HYDRA_CHECK(opt->prompt.empty() || !opt->tokenizer.empty(), "generate: --prompt needs --tokenizer");
            HYDRA_CHECK(opt->stops.empty() || !opt->tokenizer.empty(), "generate: --stop needs --tokenizer");
            HYDRA_CHECK(!opt->stop_at_eos || !opt->tokenizer.empty(),
                        "generate: --stop-at-eos needs --tokenizer (its ", kEndOfText, " token)");
            for (const std::string& s : opt->stops) HYDRA_CHECK(!s.empty(), "--stop: the text is empty");
            g.mode = parse_generate_mode(opt->combine, &g.head);
            train::JudgeOptions& judge = opt->judge;
            const bool judging = judge.judge_head >= 0;
            for (const CLI::Option* o : opt->judge_only)
              HYDRA_CHECK(judging || o->count() == 0, "generate: ", o->get_name(), " needs --judge-head");
            HYDRA_CHECK(!judging || !opt->tokenizer.empty(),
                        "generate: --judge-head needs --tokenizer (the judge reads the prompt and the answer as text)");
            if (judging && judge.answer_head < 0) {
              HYDRA_CHECK(g.mode == GenerateMode::Head, "generate --judge-head: give --answer-head A, the head whose "
                          "hidden state the judge reads (it defaults to K only with --combine head:K)");
              judge.answer_head = g.head;
            }
            if (!opt->heads.empty()) g.heads = parse_int_list(opt->heads, "--heads");
            if (opt->draft_head >= 0) g.draft_head = opt->draft_head;
            if (!opt->beta.empty()) {
              size_t begin = 0;
              while (true) {
                const size_t comma = opt->beta.find(',', begin);
                const std::string part = opt->beta.substr(begin, comma == std::string::npos ? comma : comma - begin);
                size_t used = 0;
                double b = NAN;
                try {
                  b = std::stod(part, &used);
                } catch (const std::exception&) {
                  used = 0;
                }
                HYDRA_CHECK(used > 0 && used == part.size(), "--beta: '", part, "' is not a number");
                g.beta.push_back(b);
                if (comma == std::string::npos) break;
                begin = comma + 1;
              }
            }
            g.signals = opt->json;

            // Everything is read and checked before the weights are loaded.
            const HydraTransformerConfig config = load_model_config(opt->model);
            const int64_t V = config.base_config.vocab_size;
            if (judging) {
              // The judge head was trained to say A or B, not to continue text: it generates only when
              // --heads names it.
              if (g.heads.empty() && g.mode != GenerateMode::Head)
                for (int64_t k = 0; k < config.n_heads; ++k)
                  if (k != judge.judge_head) g.heads.push_back(k);
            }
            std::optional<io::Tokenizer> tokenizer;
            if (!opt->tokenizer.empty()) {
              tokenizer.emplace(io::Tokenizer::load(opt->tokenizer));
              HYDRA_CHECK(static_cast<int64_t>(tokenizer->vocab_size()) <= V, "--tokenizer ", opt->tokenizer, " has ",
                          tokenizer->vocab_size(), " ids, more than the model's vocabulary of ", V,
                          " (was the model trained with another tokenizer?)");
              g.vocab_limit = static_cast<int64_t>(tokenizer->vocab_size());
              if (opt->stop_at_eos) {
                const std::optional<uint32_t> eos = tokenizer->token_id(kEndOfText);
                HYDRA_CHECK(eos.has_value(), "--stop-at-eos: the tokenizer ", opt->tokenizer, " has no ", kEndOfText,
                            " token");
                g.stop_id = *eos;
              }
            }
            std::vector<int64_t> prompt_ids;
            if (!opt->tokens.empty()) {
              prompt_ids = parse_int_list(opt->tokens, "--tokens");
              const int64_t limit = g.vocab_limit > 0 ? g.vocab_limit : V;
              for (size_t i = 0; i < prompt_ids.size(); ++i)
                HYDRA_CHECK(prompt_ids[i] >= 0 && prompt_ids[i] < limit, "--tokens: id ", prompt_ids[i], " at position ",
                            i, " is outside the vocabulary [0, ", limit, ")");
            } else {
              for (uint32_t id : tokenizer->encode(opt->prompt, /*allow_special=*/true))
                prompt_ids.push_back(id);
            }
            check_generate_options(g, config, static_cast<int64_t>(prompt_ids.size()));
            if (judging) {
              judge.validate(config.n_heads);
              judge.parse_tokens(opt->judge_tokens);
              train::judge_token_ids(*tokenizer, judge, V);  // each one token
            }
            const DType weights = parse_dtype_option(opt->dtype);
            auto model = load_model_dir(opt->model, weights);
            if (weights == DType::BFloat16)
              std::fprintf(stderr, "generate: bfloat16 weights, bf16 kernel: %s\n",
                           kernels::bf16_path_name(kernels::bf16_path()));

            TextStream text(opt->stops, opt->json);
            int64_t index = 0;
            auto on_token = [&](const GeneratedToken& t) {
              std::string bytes;
              const bool is_eos = g.stop_id && t.id == *g.stop_id;
              if (tokenizer) bytes = tokenizer->decode(std::vector<uint32_t>{static_cast<uint32_t>(t.id)});
              if (opt->json) {
                nlohmann::ordered_json j = {{"type", "token"}, {"index", index},       {"id", t.id},
                                    {"prob", t.prob},  {"entropy", t.entropy}, {"top_margin", t.top_margin},
                                    {"head_argmax", t.head_argmax}, {"vote_margin", t.vote_margin}};
                if (tokenizer) j["text"] = bytes;
                if (g.mode == GenerateMode::Speculative) {
                  // Every emitted token is an accepted proposal of the draft, or the replacement of a
                  // rejected one.
                  j["drafted"] = t.drafted;
                  j["accepted"] = t.drafted;
                  if (t.rejected_draft) j["rejected_draft"] = *t.rejected_draft;
                }
                std::printf("%s\n", dump(j).c_str());
                std::fflush(stdout);
              } else if (!tokenizer) {
                std::printf("%s%lld", index == 0 ? "" : " ", static_cast<long long>(t.id));
                std::fflush(stdout);
              }
              ++index;
              return is_eos || !tokenizer || text.add(bytes);
            };
            const GenerateResult r = generate(*model, prompt_ids, g, on_token);
            text.finish();
            double judge_score = 0;
            if (judging) {
              // The prompt as text: as given, or the --tokens ids decoded.
              const std::string prompt_text =
                  opt->tokens.empty()
                      ? opt->prompt
                      : io::utf8_replace_invalid(tokenizer->decode(std::vector<uint32_t>(prompt_ids.begin(), prompt_ids.end())));
              judge_score = train::judge_answer(*model, *tokenizer, judge, prompt_text, text.text(), "generate --judge-head");
            }

            const std::string reason = r.stop_reason == "stop_id" ? "eos" : r.stop_reason == "callback" ? "stop" : r.stop_reason;
            const int64_t generated = static_cast<int64_t>(r.ids.size());
            const bool speculative = g.mode == GenerateMode::Speculative;
            if (opt->json) {
              nlohmann::ordered_json s = {{"type", "summary"},
                                  {"ids", r.ids},
                                  {"stop_reason", reason},
                                  {"combine", generate_mode_name(g.mode, g.head)},
                                  {"heads", r.signal_heads},
                                  {"prompt_tokens", r.prompt_tokens},
                                  {"generated_tokens", generated},
                                  {"prefill_tokens", r.prefill_tokens},
                                  {"prefill_seconds", r.prefill_seconds},
                                  {"prefill_tokens_per_s", per_second(r.prefill_tokens, r.prefill_seconds)},
                                  {"decode_seconds", r.decode_seconds},
                                  {"decode_tokens_per_s", per_second(generated, r.decode_seconds)}};
              if (tokenizer) s["text"] = text.text();
              if (speculative) {
                s["draft_head"] = r.draft_head;
                s["verifier_heads"] = r.verifier_heads;
                s["gamma"] = g.gamma;
                s["drafted"] = r.drafted;
                s["accepted"] = r.accepted;
                s["acceptance_rate"] = r.acceptance_rate();
              }
              if (judging) {
                s["judge_head"] = judge.judge_head;
                s["answer_head"] = judge.answer_head;
                s["judge_score"] = judge_score;
              }
              std::printf("%s\n", dump(s).c_str());
            } else {
              std::printf("\n");
              std::fflush(stdout);  // the text's end before the summary, also when both go to one file
              std::fprintf(stderr, "generate: prompt %lld tokens (prefill %.1f tokens/s), %lld new tokens in %.3f s (%.1f tokens/s)",
                           static_cast<long long>(r.prompt_tokens), per_second(r.prefill_tokens, r.prefill_seconds),
                           static_cast<long long>(generated), r.decode_seconds, per_second(generated, r.decode_seconds));
              if (speculative)
                std::fprintf(stderr, "; draft head %lld, gamma %lld: acceptance rate %.3f (%lld of %lld proposals)",
                             static_cast<long long>(r.draft_head), static_cast<long long>(g.gamma), r.acceptance_rate(),
                             static_cast<long long>(r.accepted), static_cast<long long>(r.drafted));
              if (judging)
                std::fprintf(stderr, "; judge head %lld on head %lld: score %.4f", static_cast<long long>(judge.judge_head),
                             static_cast<long long>(judge.answer_head), judge_score);
              std::fprintf(stderr, "; stop: %s\n", reason.c_str());
            }
            return 0;
          }};
}

}  // namespace hydra::cli
