// Supervised fine-tuning data: prompt/answer pairs with the loss on the answer only (the upstream
// recipe).
//
// The file is JSON Lines: one object per line with string fields "prompt" and "answer" (other fields
// are ignored; blank lines are skipped). Each row's ids are the prompt's ids then the answer's ids,
// each encoded on its own, with no BOS or EOS added; append_eos puts the tokenizer's end-of-text id
// after the answer (counted in the loss). A row of L ids gives L − 1 input positions; position t
// predicts id t + 1 and is counted only when id t + 1 belongs to the answer (the prompt and the padding
// get the ignore id). A batch is right-padded to its longest row.
//
// A row needs L − 1 <= seq; a longer one is an error naming its line, or with truncate_left drops prompt
// ids from the left until it fits (an answer too long on its own is still an error).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/tokenizer.h"
#include "train/data.h"

namespace hydra::train {

// One line of an SFT file: {"prompt": ..., "answer": ...} (other fields ignored).
struct PromptAnswer {
  std::string prompt, answer;
  int64_t line;  // 1-based line in the file
};
// Reads every row of a JSON Lines file of prompt/answer objects (blank lines skipped). Errors name the
// file and the line; a file with no row is an error.
std::vector<PromptAnswer> read_prompt_answer_file(const std::string& path);

struct SftOptions {
  int64_t seq = 256;           // the most input positions a row may have
  bool append_eos = false;
  bool truncate_left = false;
  std::string eos_token = "<|endoftext|>";
};

class SftDataset : public Dataset {
 public:
  // Reads and tokenizes `path`; every id must be below vocab_size (the model's). Errors name the file
  // and the line.
  static std::shared_ptr<SftDataset> load(const std::string& path, const io::Tokenizer& tokenizer,
                                          const SftOptions& options, int64_t vocab_size);

  int64_t size() const override { return static_cast<int64_t>(rows_.size()); }
  Batch make_batch(const std::vector<int64_t>& items) const override;
  std::string describe() const override;

  struct Row {
    std::vector<int64_t> ids;  // prompt then answer (then EOS)
    int64_t prompt_length;     // ids before the answer
    int64_t line;              // 1-based line in the file
  };
  const std::vector<Row>& rows() const { return rows_; }

 private:
  std::string path_;
  std::vector<Row> rows_;
  int64_t answer_tokens_ = 0, truncated_ = 0;
};

}  // namespace hydra::train
