#include "io/json_file.h"

#include <filesystem>
#include <set>
#include <vector>
#include <fstream>
#include <sstream>

#include "tensor/error.h"

namespace hydra::io {

nlohmann::json parse_json_text(std::string_view text, const std::string& source) {
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
    throw Error(source + ": not valid JSON (a NUL byte at offset " + std::to_string(nul) + ")");
  json value;
  try {
    value = json::parse(text.begin(), text.end(), track);
  } catch (const json::exception& e) {
    throw Error(source + ": not valid JSON (" + e.what() + ")");
  }
  if (!duplicate.empty()) throw Error(source + ": names '" + duplicate + "' twice");
  return value;
}

std::string read_file_bytes(const std::string& path, const std::string& what) {
  const std::string about = what.empty() ? "" : " (" + what + ")";
  std::error_code ec;
  // A directory opens as a stream on Linux and then reads as nothing: say what it is instead.
  HYDRA_CHECK(!std::filesystem::is_directory(path, ec), "cannot read '", path, "': it is a directory", about);
  std::ifstream in(path, std::ios::binary);
  HYDRA_CHECK(in.good(), "cannot read '", path, "'", about);
  std::ostringstream bytes;
  bytes << in.rdbuf();  // an empty file leaves `bytes` empty (and its failbit set, which is harmless)
  HYDRA_CHECK(!in.bad(), "cannot read '", path, "': read error", about);
  return std::move(bytes).str();
}

nlohmann::json read_json_file(const std::string& path, const std::string& what) {
  return parse_json_text(read_file_bytes(path, what), path);
}

}  // namespace hydra::io
