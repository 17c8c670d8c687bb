#include "nn/cross_entropy.h"
#include "train/sft_data.h"

#include <algorithm>
#include <sstream>

#include "io/input_file.h"
#include "io/json_file.h"
#include "tensor/machine_memory.h"

namespace hydra::train {

namespace {

std::string string_field(const nlohmann::json& j, const char* key, const std::string& where) {
  HYDRA_CHECK(j.is_object(), where, ": expected a JSON object with string fields \"prompt\" and \"answer\"");
  auto it = j.find(key);
  HYDRA_CHECK(it != j.end(), where, ": no \"", key, "\" field");
  HYDRA_CHECK(it->is_string(), where, ": \"", key, "\" must be a string, got ", it->type_name());
  return it->get<std::string>();
}

}  // namespace

std::vector<PromptAnswer> read_prompt_answer_file(const std::string& path) {
  std::vector<PromptAnswer> rows;
  // Held in memory with its ids (4 bytes each; real text has 3-5 bytes per token, at worst 1): a file
  // that cannot fit twice over is refused before it is read.
  const io::InputFile file = io::InputFile::open(path, "SFT JSON Lines file");
  check_fits_in_memory(2 * file.size(), "reading " + path);
  const std::string text = file.read_all(file.size());
  std::istringstream in(text);
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(number);
    const nlohmann::json j = io::parse_json_text(line, where);
    rows.push_back({string_field(j, "prompt", where), string_field(j, "answer", where), number});
  }
  HYDRA_CHECK(!rows.empty(), path, ": no prompt/answer rows");
  return rows;
}

std::shared_ptr<SftDataset> SftDataset::load(const std::string& path, const io::Tokenizer& tokenizer,
                                             const SftOptions& options, int64_t vocab_size) {
  auto data = std::make_shared<SftDataset>();
  data->path_ = path;
  std::optional<uint32_t> eos;
  if (options.append_eos) {
    eos = tokenizer.token_id(options.eos_token);
    HYDRA_CHECK(eos.has_value(), "--sft-eos: the tokenizer has no token '", options.eos_token, "'");
  }
  for (const PromptAnswer& pa : read_prompt_answer_file(path)) {
    const std::string where = path + ":" + std::to_string(pa.line);
    const std::string& prompt = pa.prompt;
    const std::string& answer = pa.answer;
    const int64_t number = pa.line;
    std::vector<uint32_t> prompt_ids, answer_ids;
    tokenizer.encode(prompt, prompt_ids, false, where + " (prompt)");
    tokenizer.encode(answer, answer_ids, false, where + " (answer)");
    if (eos) answer_ids.push_back(*eos);
    HYDRA_CHECK(!answer_ids.empty(), where, ": the answer is empty (nothing to train on)");
    Row row;
    row.line = number;
    // Inputs are ids [0, L-1): L - 1 positions must fit in seq.
    int64_t prompt_length = static_cast<int64_t>(prompt_ids.size());
    const int64_t length = prompt_length + static_cast<int64_t>(answer_ids.size());
    HYDRA_CHECK(length >= 2, where, ": prompt and answer give ", length,
                " token(s); a row needs at least 2 (one input, one target)");
    const int64_t excess = length - 1 - options.seq;
    size_t drop = 0;
    if (excess > 0) {
      HYDRA_CHECK(options.truncate_left, where, ": the row has ", length, " tokens, ", length - 1,
                  " input positions, more than --seq ", options.seq, " (raise --seq or use --truncate left)");
      HYDRA_CHECK(excess <= prompt_length, where, ": the answer alone has ", answer_ids.size(),
                  " tokens, more than --seq ", options.seq, " allows even with the whole prompt dropped");
      drop = static_cast<size_t>(excess);
      prompt_length -= excess;
      ++data->truncated_;
    }
    for (size_t i = drop; i < prompt_ids.size(); ++i) row.ids.push_back(prompt_ids[i]);
    for (uint32_t id : answer_ids) row.ids.push_back(id);
    for (int64_t id : row.ids)
      HYDRA_CHECK(id < vocab_size, where, ": token id ", id, " is outside the model's vocabulary [0, ", vocab_size,
                  ") (is this the model's tokenizer?)");
    row.prompt_length = prompt_length;
    data->answer_tokens_ += static_cast<int64_t>(answer_ids.size());
    data->rows_.push_back(std::move(row));
  }
  return data;
}

std::string SftDataset::describe() const {
  std::ostringstream os;
  os << path_ << ", " << rows_.size() << " rows, " << answer_tokens_ << " answer tokens";
  if (truncated_ > 0) os << ", " << truncated_ << " truncated on the left";
  return os.str();
}

Batch SftDataset::make_batch(const std::vector<int64_t>& items) const {
  const int64_t B = static_cast<int64_t>(items.size());
  int64_t T = 1;
  for (int64_t i : items) T = std::max<int64_t>(T, static_cast<int64_t>(rows_.at(i).ids.size()) - 1);
  // Padding: input id 0 (any id would do: causal attention keeps it from every counted position),
  // target ignored.
  Tensor inputs = zeros({B, T}, DType::Int64), targets = full({B, T}, static_cast<double>(kIgnoreIndex), DType::Int64);
  int64_t* in = inputs.data<int64_t>();
  int64_t* tg = targets.data<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const Row& row = rows_[items[b]];
    const int64_t positions = static_cast<int64_t>(row.ids.size()) - 1;
    for (int64_t t = 0; t < positions; ++t) {
      in[b * T + t] = row.ids[t];
      if (t + 1 >= row.prompt_length) tg[b * T + t] = row.ids[t + 1];  // id t+1 is part of the answer
    }
  }
  Batch batch;
  batch.inputs = inputs;
  batch.targets = targets;
  return batch;
}

}  // namespace hydra::train
