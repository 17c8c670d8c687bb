// parse_json_strict (the contract is in strict_json.h).
#include "io/strict_json.h"

#include <set>
#include <vector>

#include "tensor/error.h"

namespace hydra::io {

nlohmann::json parse_json_strict(std::string_view text, const std::string& prefix) {
  using json = nlohmann::json;
  // One set of keys per object being parsed (objects nest), to catch a repeated key at any depth.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  json::parser_callback_t track = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty()) {
      const std::string key = parsed.get<std::string>();
      if (!open_objects.back().insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  // nlohmann's lexer ends the input at a NUL byte, which would let "{...}\0<anything>" through. Raw NUL
  // is never valid JSON (inside a string it must be written \u0000), so reject it outright.
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos)
    throw Error(prefix + ": not valid JSON (a NUL byte at offset " + std::to_string(nul) + ")");
  json value;
  try {
    value = json::parse(text.begin(), text.end(), track);
  } catch (const json::exception& e) {
    throw Error(prefix + ": not valid JSON (" + e.what() + ")");
  }
  if (!duplicate.empty()) throw Error(prefix + ": names '" + duplicate + "' twice");
  return value;
}

}  // namespace hydra::io
