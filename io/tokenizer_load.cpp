// Loading tokenizer.json into a Tokenizer: parse, validate every field Hydra relies on, convert the
// byte-level vocab to raw bytes and the merges to id pairs (the supported format is in tokenizer.h).
//
// The loader is a function of (JSON text, file name) with no I/O so a fuzzer can drive it; every
// malformed input is a hydra::Error "invalid tokenizer file <file>: <what, expected vs found>".
#include <limits>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "io/byte_level.h"
#include "io/input_file.h"
#include "io/json_file.h"
#include "io/tokenizer.h"
#include "tensor/error.h"

namespace hydra::io {

namespace {

using nlohmann::json;

// Ids may leave holes (cl100k has a few between its special tokens), but not so many that a tiny
// file could make the id table enormous.
constexpr uint64_t kMaxUnusedIds = 65536;

template <class... Args>
[[noreturn]] void fail(const std::string& file, const Args&... args) {
  throw Error(detail::concat_message("invalid tokenizer file ", file, ": ", args...));
}

// A JSON value shown in a message, cut short (io/json_file.h: bounded work whatever the value holds).
std::string shown(const json& value) { return json_excerpt(value); }

const json* find(const json& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

bool is_null_or_absent(const json& object, const char* key) {
  const json* v = find(object, key);
  return v == nullptr || v->is_null();
}

bool bool_field(const json& object, const char* key, bool fallback, const std::string& where,
                const std::string& file) {
  const json* v = find(object, key);
  if (v == nullptr || v->is_null()) return fallback;
  if (!v->is_boolean()) fail(file, where, ".", key, " must be true or false, found ", shown(*v));
  return v->get<bool>();
}

std::string string_field(const json& object, const char* key, const std::string& where, const std::string& file) {
  const json* v = find(object, key);
  if (v == nullptr) fail(file, where, " lacks \"", key, "\"");
  if (!v->is_string()) fail(file, where, ".", key, " must be a string, found ", shown(*v));
  return v->get<std::string>();
}

uint64_t id_value(const json& v, const std::string& what, const std::string& file) {
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    fail(file, what, " must have a non-negative integer id, found ", shown(v));
  const uint64_t id = v.get<uint64_t>();
  if (id > std::numeric_limits<uint32_t>::max() - 1) fail(file, what, " has id ", id, ", above 2^32 - 2");
  return id;
}

// A token for messages: its byte-level spelling, as in the file.
// (Appending, not "'" + s + "'": GCC 12 reports a false -Wrestrict on that form.)
std::string spelled(std::string_view raw) {
  std::string out(1, '\'');
  out.append(byte_level_encode(raw));
  out.push_back('\'');
  return out;
}

}  // namespace

// Builds a Tokenizer field by field (a friend of Tokenizer).
struct TokenizerBuilder {
  Tokenizer t;
  const std::string& file;
  std::vector<std::string> vocab_spelling;  // id -> the vocab's byte-level string ("" if none)
  std::unordered_map<uint32_t, size_t> added_by_id;  // index into t.added_

  explicit TokenizerBuilder(const std::string& f) : file(f) {}

  void build(const json& root) {
    if (!root.is_object()) fail(file, "expected a JSON object at the top level, found ", shown(root));
    const json* model = find(root, "model");
    if (model == nullptr || model->is_null())
      fail(file, "missing \"model\" (the BPE model with \"vocab\" and \"merges\")");
    if (!model->is_object()) fail(file, "\"model\" must be an object, found ", shown(*model));
    const json* type = find(*model, "type");
    if (type == nullptr) fail(file, "model lacks \"type\"; expected \"BPE\"");
    if (!type->is_string() || type->get<std::string>() != "BPE")
      fail(file, "unsupported model type ", shown(*type), "; only \"BPE\" (byte-level) is supported");
    check_model_options(*model);
    added_tokens(root);
    vocab(*model);
    std::vector<BpeMerge> merges = parse_merges(*model);
    pre_tokenizer(root);
    normalizer_and_decoder(root);
    finish_ids();
    t.bpe_ = Bpe(t.vocab_, merges, bool_field(*model, "ignore_merges", false, "model", file));
  }

  void check_model_options(const json& model) {
    if (!is_null_or_absent(model, "dropout")) fail(file, "model.dropout is not supported (expected null)");
    if (bool_field(model, "byte_fallback", false, "model", file))
      fail(file, "model.byte_fallback is not supported by byte-level BPE (expected false)");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      const json* v = find(model, key);
      if (v != nullptr && !v->is_null() && !(v->is_string() && v->get<std::string>().empty()))
        fail(file, "model.", key, " ", shown(*v), " is not supported (expected null or \"\")");
    }
  }

  void added_tokens(const json& root) {
    const json* list = find(root, "added_tokens");
    if (list == nullptr || list->is_null()) return;
    if (!list->is_array()) fail(file, "\"added_tokens\" must be an array, found ", shown(*list));
    for (size_t i = 0; i < list->size(); ++i) {
      const json& entry = (*list)[i];
      const std::string where = "added_tokens[" + std::to_string(i) + "]";
      if (!entry.is_object()) fail(file, where, " must be an object, found ", shown(entry));
      AddedToken token;
      const json* id = find(entry, "id");
      if (id == nullptr) fail(file, where, " lacks \"id\"");
      token.id = static_cast<uint32_t>(id_value(*id, where, file));
      token.content = string_field(entry, "content", where, file);
      if (token.content.empty()) fail(file, where, " has empty content");
      if (token.content.size() > kMaxAddedTokenBytes)
        fail(file, where, " has ", token.content.size(), " bytes of content; at most ", kMaxAddedTokenBytes,
             " are supported");
      token.special = bool_field(entry, "special", false, where, file);
      for (const char* key : {"lstrip", "rstrip", "single_word"})
        if (bool_field(entry, key, false, where, file))
          fail(file, where, " ('", token.content, "') sets ", key, ", which is not supported");
      // Hash lookups, not a scan of the tokens so far: 60,000 added tokens must load in linear time.
      if (t.added_by_content_.count(token.content)) fail(file, "added token '", token.content, "' is listed twice");
      if (const auto same_id = added_by_id.find(token.id); same_id != added_by_id.end())
        fail(file, "added token ids clash: '", t.added_[same_id->second].content, "' and '", token.content,
             "' both have id ", token.id);
      const uint32_t index = static_cast<uint32_t>(t.added_.size());
      added_by_id.emplace(token.id, index);
      t.added_by_content_.emplace(token.content, index);
      t.added_trie_.add(token.content, index, token.special);
      t.added_.push_back(std::move(token));
    }
  }

  const AddedToken* added_with_content(std::string_view content) const {
    const auto it = t.added_by_content_.find(content);
    return it == t.added_by_content_.end() ? nullptr : &t.added_[it->second];
  }

  void vocab(const json& model) {
    const json* vocab = find(model, "vocab");
    if (vocab == nullptr) fail(file, "model lacks \"vocab\"");
    if (!vocab->is_object()) fail(file, "model.vocab must be an object {token: id}, found ", shown(*vocab));
    const uint64_t limit = vocab->size() + t.added_.size() + kMaxUnusedIds;
    for (const auto& [spelling, value] : vocab->items()) {
      if (spelling.empty()) fail(file, "the vocab has an empty token (id ", shown(value), ")");
      const uint64_t id = id_value(value, "vocab token '" + spelling + "'", file);
      if (id >= limit)
        fail(file, "vocab token '", spelling, "' has id ", id, ", far beyond the ", vocab->size(),
             " tokens the file defines (at most ", kMaxUnusedIds, " ids may be unused)");
      std::optional<std::string> raw = byte_level_decode(spelling);
      if (!raw) {
        // A special token may sit in the vocab under its plain spelling ("<|endoftext|>" is plain ASCII
        // and so byte-level too, but others need not be).
        const AddedToken* added = added_with_content(spelling);
        if (added == nullptr || added->id != id)
          fail(file, "vocab token '", spelling, "' (id ", id, ") is not spelled in GPT-2's byte-level alphabet; "
               "only byte-level BPE tokenizers are supported");
        raw = spelling;
      }
      if (id >= vocab_spelling.size()) vocab_spelling.resize(id + 1);
      if (!vocab_spelling[id].empty())
        fail(file, "vocab ids clash: '", vocab_spelling[id], "' and '", spelling, "' both have id ", id);
      vocab_spelling[id] = spelling;
      t.vocab_.emplace(std::move(*raw), static_cast<uint32_t>(id));
    }
    for (unsigned b = 0; b < 256; ++b)
      if (t.vocab_.find(std::string(1, static_cast<char>(b))) == t.vocab_.end())
        fail(file, "the vocab lacks the token for byte ", b, " (", spelled(std::string(1, static_cast<char>(b))),
             "); byte-level BPE needs all 256 single bytes");
    for (const AddedToken& token : t.added_) {
      if (token.id < vocab_spelling.size() && !vocab_spelling[token.id].empty()) {
        const std::string& in_vocab = vocab_spelling[token.id];
        const std::optional<std::string> raw = byte_level_decode(in_vocab);
        if (in_vocab != token.content && (!raw || *raw != token.content))
          fail(file, "added token '", token.content, "' has id ", token.id, ", which the vocab gives to '", in_vocab,
               "'");
      }
      if (token.id >= limit) fail(file, "added token '", token.content, "' has id ", token.id, ", far beyond the ",
                                  vocab->size(), " vocab tokens (at most ", kMaxUnusedIds, " ids may be unused)");
    }
  }

  uint32_t merge_part(const std::string& spelling, size_t index, const std::string& merge_text) const {
    const std::optional<std::string> raw = byte_level_decode(spelling);
    const auto it = raw ? t.vocab_.find(*raw) : t.vocab_.end();
    if (it == t.vocab_.end())
      fail(file, "merge #", index, " (", merge_text, ") references '", spelling, "', which is not in the vocab");
    return it->second;
  }

  std::vector<BpeMerge> parse_merges(const json& model) {
    const json* merges = find(model, "merges");
    if (merges == nullptr) fail(file, "model lacks \"merges\"");
    if (!merges->is_array()) fail(file, "model.merges must be an array, found ", shown(*merges));
    std::vector<BpeMerge> out;
    out.reserve(merges->size());
    for (size_t i = 0; i < merges->size(); ++i) {
      const json& m = (*merges)[i];
      std::string left, right;
      // Two forms: "a b" (older files) and ["a", "b"] (newer ones; parts may then contain spaces).
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t space = s.find(' ');
        if (space == std::string::npos || space == 0 || space + 1 == s.size() ||
            s.find(' ', space + 1) != std::string::npos)
          fail(file, "merge #", i, " ", shown(m), " must be two tokens separated by one space");
        left = s.substr(0, space);
        right = s.substr(space + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        left = m[0].get<std::string>();
        right = m[1].get<std::string>();
      } else {
        fail(file, "merge #", i, " must be \"a b\" or [\"a\", \"b\"], found ", shown(m));
      }
      const std::string text = shown(m);
      BpeMerge merge{merge_part(left, i, text), merge_part(right, i, text), 0};
      const auto merged = t.vocab_.find(*byte_level_decode(left) + *byte_level_decode(right));
      if (merged == t.vocab_.end())
        fail(file, "merge #", i, " (", text, "): the merged token '", left, right, "' is not in the vocab");
      merge.merged = merged->second;
      out.push_back(merge);
    }
    return out;
  }

  void add_stage(std::string_view pattern, bool literal, const std::string& where) {
    try {
      t.stages_.push_back(std::make_shared<const Regex>(pattern, literal));
    } catch (const Error& e) {
      fail(file, where, " has a bad ", literal ? "string" : "regex", " '", std::string(pattern), "': ", e.what());
    }
  }

  void pre_tokenizer(const json& root) {
    const json* pre = find(root, "pre_tokenizer");
    if (pre == nullptr || pre->is_null())
      fail(file, "missing \"pre_tokenizer\"; byte-level BPE needs a ByteLevel pre-tokenizer");
    if (!pre->is_object()) fail(file, "\"pre_tokenizer\" must be an object, found ", shown(*pre));
    std::vector<const json*> steps;
    std::string type = string_field(*pre, "type", "pre_tokenizer", file);
    if (type == "Sequence") {
      const json* list = find(*pre, "pretokenizers");
      if (list == nullptr || !list->is_array())
        fail(file, "pre_tokenizer of type Sequence needs a \"pretokenizers\" array");
      if (list->size() > kMaxPreTokenizerStages)
        fail(file, "pre_tokenizer has ", list->size(), " steps; at most ", kMaxPreTokenizerStages, " are supported");
      for (const json& step : *list) steps.push_back(&step);
    } else {
      steps.push_back(pre);
    }
    bool byte_level_seen = false;
    for (size_t i = 0; i < steps.size(); ++i) {
      const json& step = *steps[i];
      const std::string where = steps.size() == 1 && steps[0] == pre ? "pre_tokenizer"
                                                                      : "pre_tokenizer.pretokenizers[" + std::to_string(i) + "]";
      if (!step.is_object()) fail(file, where, " must be an object, found ", shown(step));
      const std::string step_type = string_field(step, "type", where, file);
      if (byte_level_seen) fail(file, where, " (", step_type, ") follows ByteLevel; ByteLevel must be the last step");
      if (step_type == "Split") {
        const json* pattern = find(step, "pattern");
        if (pattern == nullptr || !pattern->is_object())
          fail(file, where, " needs \"pattern\": {\"Regex\": ...} or {\"String\": ...}");
        const bool literal = find(*pattern, "String") != nullptr;
        const char* key = literal ? "String" : "Regex";
        const std::string text = string_field(*pattern, key, where + ".pattern", file);
        const std::string behavior = string_field(step, "behavior", where, file);
        if (behavior != "Isolated")
          fail(file, where, " has behavior '", behavior, "'; only \"Isolated\" is supported");
        if (bool_field(step, "invert", false, where, file)) fail(file, where, " sets invert, which is not supported");
        add_stage(text, literal, where);
      } else if (step_type == "ByteLevel") {
        // HuggingFace's default for add_prefix_space is true, so an absent field means true.
        if (bool_field(step, "add_prefix_space", true, where, file))
          fail(file, where, " sets add_prefix_space (or leaves it at its default, true), which is not supported");
        if (bool_field(step, "use_regex", true, where, file)) add_stage(kGpt2PreTokenizerPattern, false, where);
        byte_level_seen = true;
      } else {
        fail(file, "unsupported pre-tokenizer '", step_type, "' in ", where, "; expected Split or ByteLevel");
      }
    }
    if (!byte_level_seen) fail(file, "the pre_tokenizer has no ByteLevel step; only byte-level BPE is supported");
  }

  void normalizer_and_decoder(const json& root) {
    if (!is_null_or_absent(root, "normalizer"))
      fail(file, "unsupported normalizer ", shown(root["normalizer"]), "; expected null");
    const json* decoder = find(root, "decoder");
    if (decoder != nullptr && !decoder->is_null()) {
      if (!decoder->is_object() || string_field(*decoder, "type", "decoder", file) != "ByteLevel")
        fail(file, "unsupported decoder ", shown(*decoder), "; expected ByteLevel or null");
    }
  }

  // The id table: vocab tokens as raw bytes, added tokens as their content, holes marked.
  void finish_ids() {
    uint64_t size = vocab_spelling.size();
    for (const AddedToken& token : t.added_) size = std::max<uint64_t>(size, uint64_t{token.id} + 1);
    t.token_bytes_.assign(size, std::string());
    t.has_id_.assign(size, false);
    for (const auto& [raw, id] : t.vocab_) {
      t.token_bytes_[id] = raw;
      t.has_id_[id] = true;
    }
    for (const AddedToken& token : t.added_) {
      t.token_bytes_[token.id] = token.content;
      t.has_id_[token.id] = true;
    }
  }
};

Tokenizer Tokenizer::from_json(std::string_view json_text, const std::string& file) {
  json root;
  try {
    root = parse_json_text(json_text, file);  // strict: no duplicate keys, bounded depth (io/json_file.h)
  } catch (const Error& e) {
    throw Error(std::string("invalid tokenizer file ") + e.what());
  }
  TokenizerBuilder builder(file);
  try {
    builder.build(root);
  } catch (const json::exception& e) {
    // Every field is type-checked before use; this is a last line of defence for the fuzzer.
    fail(file, "unexpected JSON structure: ", e.what());
  }
  return std::move(builder.t);
}

Tokenizer Tokenizer::load(const std::string& path) {
  return from_json(read_file(path, "tokenizer file", kMaxTokenizerBytes), path);
}

}  // namespace hydra::io
