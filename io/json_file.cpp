// Strict JSON parsing and bounded excerpts (the contract is in json_file.h).
#include "io/json_file.h"

#include <vector>

#include "io/input_file.h"
#include "tensor/error.h"

namespace hydra::io {

namespace {

using json = nlohmann::json;

// nlohmann's parse errors quote the last token read, which may be a string of any length: cut it.
std::string bounded(const std::string& message) {
  constexpr size_t kMaxChars = 300;
  return message.size() <= kMaxChars ? message : message.substr(0, kMaxChars) + "...";
}

// Builds the DOM from nlohmann's SAX events, with the two checks the stock parser lacks: a depth bound
// and duplicate keys (looked up in the object being built: O(log n) per key, so the parse stays linear).
// `open` holds the containers being filled; each points into its parent, which gets no other element
// while the child is open, so the pointers stay valid.
class StrictBuilder {
 public:
  json root;
  std::string error;  // empty while all is well

  bool null() { return add(json(nullptr)); }
  bool boolean(bool v) { return add(json(v)); }
  bool number_integer(json::number_integer_t v) { return add(json(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return add(json(v)); }
  bool number_float(json::number_float_t v, const json::string_t&) { return add(json(v)); }
  bool string(json::string_t& v) { return add(json(std::move(v))); }
  bool binary(json::binary_t&) { return fail("binary values are not JSON"); }
  bool start_object(std::size_t) { return open_container(json::object()); }
  bool start_array(std::size_t) { return open_container(json::array()); }
  bool end_object() { return close_container(); }
  bool end_array() { return close_container(); }
  bool key(json::string_t& k) {
    if (open_.back()->contains(k)) return fail("names '" + k.substr(0, 200) + "' twice");
    key_ = std::move(k);
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    return fail("not valid JSON (" + bounded(e.what()) + ")");
  }

 private:
  bool fail(std::string why) {
    if (error.empty()) error = std::move(why);
    return false;
  }
  // Places v where the parser is: the root, the next array element, or the value of the last key.
  json* place(json&& v) {
    if (open_.empty()) {
      root = std::move(v);
      return &root;
    }
    json& parent = *open_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    return &(parent[std::move(key_)] = std::move(v));
  }
  bool add(json&& v) {
    place(std::move(v));
    return true;
  }
  bool open_container(json&& empty) {
    if (static_cast<int>(open_.size()) >= kMaxJsonDepth)
      return fail(detail::concat_message("JSON nested deeper than ", kMaxJsonDepth, " levels"));
    open_.push_back(place(std::move(empty)));
    return true;
  }
  bool close_container() {
    open_.pop_back();
    return true;
  }

  std::vector<json*> open_;
  std::string key_;
};

// Appends at most about `budget` characters of v to out; `depth` bounds the recursion.
void excerpt_into(const json& v, std::string& out, size_t budget, int depth) {
  if (out.size() >= budget) return;
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    const bool cut = s.size() > budget;
    out += json(cut ? s.substr(0, budget) : s).dump(-1, ' ', false, json::error_handler_t::replace);
    if (cut) out.insert(out.size() - 1, "...");
    return;
  }
  if (!v.is_structured()) {
    out += v.dump();
    return;
  }
  const bool object = v.is_object();
  out += object ? '{' : '[';
  if (depth >= 8 && !v.empty()) out += "...";
  bool first = true;
  for (auto it = v.begin(); depth < 8 && it != v.end(); ++it) {
    if (out.size() >= budget) {
      out += first ? "..." : ", ...";
      break;
    }
    if (!first) out += ", ";
    first = false;
    if (object) {
      excerpt_into(json(it.key()), out, budget, depth + 1);
      out += ": ";
    }
    excerpt_into(*it, out, budget, depth + 1);
  }
  out += object ? '}' : ']';
}

}  // namespace

nlohmann::json parse_json_text(std::string_view text, const std::string& source) {
  // nlohmann's lexer ends the input at a NUL byte, which would let "{...}\0<anything>" through. Raw NUL
  // is never valid JSON (inside a string it must be written \u0000), so reject it outright.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos)
    throw Error(source + ": not valid JSON (a NUL byte at offset " + std::to_string(nul) + ")");
  StrictBuilder builder;
  bool ok = false;
  try {
    ok = json::sax_parse(text.begin(), text.end(), &builder, json::input_format_t::json, /*strict=*/true);
  } catch (const json::exception& e) {
    throw Error(source + ": not valid JSON (" + bounded(e.what()) + ")");
  }
  if (!ok || !builder.error.empty())
    throw Error(source + ": " + (builder.error.empty() ? std::string("not valid JSON") : builder.error));
  return std::move(builder.root);
}

nlohmann::json read_json_file(const std::string& path, const std::string& kind, uint64_t max_bytes) {
  return parse_json_text(read_file(path, kind, max_bytes), path);
}

std::string json_excerpt(const nlohmann::json& value, size_t max_chars) {
  std::string out;
  excerpt_into(value, out, max_chars, 0);
  return out;
}

}  // namespace hydra::io
