#include "io/json_file.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tensor/error.h"

namespace hydra::io {

nlohmann::json parse_json_text(std::string_view text, const std::string& source) {
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    throw Error(source + ": not valid JSON (" + e.what() + ")");
  }
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
