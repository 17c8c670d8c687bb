// Sharded safetensors checkpoints (the format and the rules are in safetensors_index.h).
#include "io/safetensors_index.h"

#include <cstdio>
#include <filesystem>
#include <set>

#include "io/atomic_file.h"
#include "io/input_file.h"
#include "io/mmap_file.h"
#include "io/safetensors.h"
#include "io/json_file.h"
#include "tensor/error.h"

namespace hydra::io {

namespace fs = std::filesystem;

namespace {

// An index is about a hundred bytes per tensor (a 405B model's is ~100 KB); anything near this is not one.
constexpr uint64_t kMaxIndexBytes = 16 << 20;

template <class... Args>
[[noreturn]] void fail(const std::string& file, const Args&... args) {
  throw Error(detail::concat_message("invalid safetensors index ", file, ": ", args...));
}

// A shard must be a plain file name next to the index: "../x" or "/etc/x" would let an index reach out.
void check_shard_name(const std::string& shard, const std::string& tensor, const std::string& file) {
  const bool plain = !shard.empty() && shard.find('/') == std::string::npos &&
                     shard.find('\\') == std::string::npos && shard != "." && shard != "..";
  if (!plain)
    fail(file, "tensor '", tensor, "': shard '", shard, "' must be a file name in the index's directory");
  if (shard.size() <= 12 || shard.compare(shard.size() - 12, 12, ".safetensors") != 0)
    fail(file, "tensor '", tensor, "': shard '", shard, "' does not end in .safetensors");
}

}  // namespace

std::vector<std::string> SafetensorsIndex::shards() const {
  std::set<std::string> names;
  for (const auto& [tensor, shard] : weight_map) names.insert(shard);
  return {names.begin(), names.end()};
}

SafetensorsIndex parse_safetensors_index(std::string_view text, const std::string& file) {
  nlohmann::json j;
  try {
    j = parse_json_text(text, "content");
  } catch (const Error& e) {
    fail(file, e.what());
  }
  if (!j.is_object()) fail(file, "expected a JSON object, got ", j.type_name());
  SafetensorsIndex index;
  if (const auto meta = j.find("metadata"); meta != j.end() && !meta->is_null()) {
    if (!meta->is_object()) fail(file, "'metadata' must be an object, got ", meta->type_name());
    if (const auto total = meta->find("total_size"); total != meta->end()) {
      if (!total->is_number_unsigned())
        fail(file, "metadata.total_size must be a non-negative integer, got ", json_excerpt(*total));
      index.total_size = total->get<uint64_t>();
    }
  }
  const auto map = j.find("weight_map");
  if (map == j.end()) fail(file, "missing 'weight_map' (the tensor name -> shard file table)");
  if (!map->is_object()) fail(file, "'weight_map' must be an object, got ", map->type_name());
  if (map->empty()) fail(file, "'weight_map' lists no tensors");
  for (const auto& [name, shard] : map->items()) {
    if (!shard.is_string()) fail(file, "tensor '", name, "': shard must be a file name string, got ", json_excerpt(shard));
    check_shard_name(shard.get<std::string>(), name, file);
    index.weight_map[name] = shard.get<std::string>();
  }
  return index;
}

namespace {

// The shards of a sharded checkpoint, opened and cross-checked against the index.
std::vector<SafetensorsShard> open_sharded(const std::string& index_path) {
  const SafetensorsIndex index = parse_safetensors_index(read_file(index_path, "safetensors index", kMaxIndexBytes), index_path);
  const fs::path dir = fs::path(index_path).parent_path();
  // Every shard must exist before any is read: the error then names the first missing one.
  for (const std::string& shard : index.shards()) {
    std::error_code ec;
    if (!fs::exists(dir / shard, ec)) {
      std::string example;
      for (const auto& [name, s] : index.weight_map)
        if (s == shard) {
          example = name;
          break;
        }
      fail(index_path, "shard '", shard, "' (named for tensor '", example, "') does not exist in ", dir.string());
    }
  }
  // Where each tensor really is, from the shards' headers alone (no data is read until all agree).
  std::vector<SafetensorsShard> shards;
  std::map<std::string, std::string> found_in;  // tensor -> the shard it was read from
  for (const std::string& shard : index.shards()) {
    InputFile in = InputFile::open((dir / shard).string(), "safetensors file");
    SafetensorsHeader header = read_safetensors_header(in);
    for (const SafetensorsTensorInfo& t : header.tensors) {
      if (const auto seen = found_in.find(t.name); seen != found_in.end())
        fail(index_path, "tensor '", t.name, "' is in two shards: '", seen->second, "' and '", shard, "'");
      found_in[t.name] = shard;
    }
    shards.push_back({std::move(in), std::move(header)});
  }
  for (const auto& [name, shard] : found_in) {
    const auto listed = index.weight_map.find(name);
    if (listed == index.weight_map.end())
      fail(index_path, "tensor '", name, "' is in shard '", shard, "' but not in weight_map");
    if (listed->second != shard)
      fail(index_path, "tensor '", name, "' is in shard '", shard, "' but weight_map puts it in '", listed->second,
           "'");
  }
  for (const auto& [name, shard] : index.weight_map)
    if (found_in.count(name) == 0) fail(index_path, "tensor '", name, "' is not in its shard '", shard, "'");
  return shards;
}

// Every tensor of the opened shards (views of their mappings, or converted copies; see safetensors.h),
// after checking every dtype is loadable.
std::map<std::string, Tensor> load_shards(const std::vector<SafetensorsShard>& shards) {
  for (const SafetensorsShard& shard : shards) check_loadable_dtypes(shard.header, shard.file.path());
  std::map<std::string, Tensor> tensors;
  for (const SafetensorsShard& shard : shards) {
    const std::shared_ptr<const MappedFile> mapping = MappedFile::map(shard.file);
    for (const SafetensorsTensorInfo& t : shard.header.tensors)
      tensors.emplace(t.name, safetensors_tensor(mapping, shard.header, t));
  }
  return tensors;
}

}  // namespace

std::map<std::string, Tensor> load_sharded_safetensors(const std::string& index_path) {
  return load_shards(open_sharded(index_path));
}

std::vector<SafetensorsShard> open_safetensors_checkpoint(const std::string& dir) {
  const fs::path index = fs::path(dir) / kSafetensorsIndexName;
  const fs::path single = fs::path(dir) / kSafetensorsSingleName;
  std::error_code ec;
  if (fs::exists(index, ec)) return open_sharded(index.string());
  HYDRA_CHECK(fs::exists(single, ec), "no weights in '", dir, "': expected ", kSafetensorsSingleName, " or ",
              kSafetensorsIndexName);
  std::vector<SafetensorsShard> shards;
  InputFile in = InputFile::open(single.string(), "safetensors file");
  SafetensorsHeader header = read_safetensors_header(in);
  shards.push_back({std::move(in), std::move(header)});
  return shards;
}

std::map<std::string, Tensor> load_safetensors_checkpoint(const std::string& dir) {
  return load_shards(open_safetensors_checkpoint(dir));
}

std::vector<std::string> save_sharded_safetensors(const std::string& dir, const std::map<std::string, Tensor>& tensors,
                                                  uint64_t max_shard_bytes,
                                                  const std::map<std::string, std::string>& metadata) {
  HYDRA_CHECK(max_shard_bytes > 0, "save_sharded_safetensors: the shard size limit must be positive");
  // Group in name order: a new shard when the next tensor would overflow the current one.
  std::vector<std::map<std::string, Tensor>> shards(1);
  uint64_t in_shard = 0, total = 0;
  for (const auto& [name, t] : tensors) {
    HYDRA_CHECK(t.defined() && !t.is_meta(), "save_sharded_safetensors ", dir, ": tensor '", name, "' has no data");
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype());
    if (!shards.back().empty() && in_shard + nbytes > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back()[name] = t;
    in_shard += nbytes;
    total += nbytes;
  }
  if (shards.size() == 1) {
    save_safetensors((fs::path(dir) / kSafetensorsSingleName).string(), tensors, metadata);
    return {kSafetensorsSingleName};
  }
  std::vector<std::string> files;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (size_t k = 0; k < shards.size(); ++k) {
    char shard_name[64];
    std::snprintf(shard_name, sizeof shard_name, "model-%05zu-of-%05zu.safetensors", k + 1, shards.size());
    save_safetensors((fs::path(dir) / shard_name).string(), shards[k], metadata);
    files.push_back(shard_name);
    for (const auto& [name, t] : shards[k]) weight_map[name] = shard_name;
  }
  // std::map order above, so weight_map's keys are sorted: the index is deterministic.
  nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  write_file_atomic((fs::path(dir) / kSafetensorsIndexName).string(), index.dump(2) + "\n");
  files.push_back(kSafetensorsIndexName);
  return files;
}

}  // namespace hydra::io
