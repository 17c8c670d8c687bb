// Training checkpoints: writing, the manifest, the training-state container, verified loading
// (the format and the guarantees are in checkpoint.h).
#include "train/checkpoint.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "hydra/lora.h"
#include "hydra/model_dir.h"
#include "io/atomic_dir.h"
#include "io/json_file.h"
#include "io/atomic_file.h"
#include "io/input_file.h"
#include "io/safetensors.h"
#include "io/sha256.h"
#include "io/zstd.h"
#include "tensor/error.h"

namespace hydra::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kManifest = "manifest.json";
constexpr const char* kConfig = "config.json";
constexpr const char* kWeights = "model.safetensors";
constexpr const char* kState = "training_state.bin.zst";
constexpr const char* kFormat = "hydra-checkpoint";
constexpr const char* kStateFormat = "hydra-training-state";
// A manifest lists three (or five) files and the data files: far below this.
constexpr uint64_t kMaxManifestBytes = 64 << 20;
// The decompressed training state is held in memory (two moments per parameter of a 7B model are 56 GB).
constexpr uint64_t kMaxStateBytes = uint64_t{256} << 30;

bool is_sha256_hex(const json& v) {
  if (!v.is_string()) return false;
  const std::string& s = v.get_ref<const std::string&>();
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// The field `key` of object `j`, which must exist; `where` says which object ("the manifest", ...).
const json& field(const json& j, const char* key, const std::string& file, const std::string& where) {
  auto it = j.find(key);
  HYDRA_CHECK(it != j.end(), file, ": ", where, " lacks the field '", key, "'");
  return *it;
}

uint64_t unsigned_field(const json& j, const char* key, const std::string& file, const std::string& where) {
  const json& v = field(j, key, file, where);
  HYDRA_CHECK(v.is_number_unsigned(), file, ": ", where, " field '", key, "' must be a non-negative integer, got ",
              io::json_excerpt(v));
  return v.get<uint64_t>();
}

std::string string_field(const json& j, const char* key, const std::string& file, const std::string& where) {
  const json& v = field(j, key, file, where);
  HYDRA_CHECK(v.is_string(), file, ": ", where, " field '", key, "' must be a string, got ", io::json_excerpt(v));
  return v.get<std::string>();
}

std::string sha256_field(const json& j, const std::string& file, const std::string& where) {
  const json& v = field(j, "sha256", file, where);
  HYDRA_CHECK(is_sha256_hex(v), file, ": ", where, " field 'sha256' must be 64 lowercase hex digits, got ", io::json_excerpt(v));
  return v.get<std::string>();
}

json manifest_json(const CheckpointManifest& m) {
  json files = json::object();
  for (const auto& [name, rec] : m.files) files[name] = {{"sha256", rec.sha256}, {"bytes", rec.bytes}};
  json data = json::array();
  for (const DataFileRecord& d : m.data_files) data.push_back({{"path", d.path}, {"sha256", d.sha256}, {"bytes", d.bytes}});
  return {{"format", kFormat},   {"format_version", m.format_version}, {"created_by", m.created_by},
          {"step", m.step},      {"files", files},                     {"data_files", data}};
}

json state_json(const TrainingState& s) {
  json rng = json::object();
  for (const auto& [name, r] : s.rng) rng[name] = {{"seed", r.seed}, {"offset", r.offset}};
  return {{"step", s.step},         {"tokens_seen", s.tokens_seen}, {"optimizer", s.optimizer},
          {"schedule", s.schedule}, {"data_loader", s.data_loader}, {"rng", rng},
          {"run_config", s.run_config}, {"progress", s.progress}};
}

uint64_t size_of(const std::string& path, const std::string& what) {
  struct stat st {};
  HYDRA_CHECK(::stat(path.c_str(), &st) == 0, what, " ", path, " is missing: ", std::strerror(errno));
  HYDRA_CHECK(S_ISREG(st.st_mode), what, " ", path, " is not a regular file");
  return static_cast<uint64_t>(st.st_size);
}

}  // namespace

DataFileRecord describe_data_file(const std::string& path) {
  const io::InputFile in = io::InputFile::open(path, "data file");
  return {path, io::sha256_file_hex(in), in.size()};
}

std::string checkpoint_manifest_text(const CheckpointManifest& manifest) {
  json j = manifest_json(manifest);
  try {
    j["manifest_sha256"] = io::sha256_hex(j.dump());
    return j.dump(2) + "\n";
  } catch (const json::exception& e) {
    throw Error(std::string("cannot write a checkpoint manifest: a path or name is not valid UTF-8 (") + e.what() + ")");
  }
}

CheckpointManifest parse_checkpoint_manifest(std::string_view text, const std::string& file) {
  const json j = io::parse_json_text(text, file);
  HYDRA_CHECK(j.is_object(), file, ": the checkpoint manifest must be a JSON object");
  const std::string where = "the manifest";
  const json& format = field(j, "format", file, where);
  HYDRA_CHECK(format == kFormat, file, ": not a Hydra checkpoint manifest (format ", io::json_excerpt(format), ", expected \"",
              kFormat, "\")");
  // The version first: a later version may change everything below, including the digest rule.
  const json& version = field(j, "format_version", file, where);
  HYDRA_CHECK(version.is_number_integer() && version == kCheckpointFormatVersion, file, ": checkpoint format_version ",
              io::json_excerpt(version), " is not supported; this Hydra reads format_version ", kCheckpointFormatVersion);
  const std::string digest = string_field(j, "manifest_sha256", file, where);
  json body = j;
  body.erase("manifest_sha256");
  HYDRA_CHECK(io::sha256_hex(body.dump()) == digest, file,
              ": the checkpoint manifest is damaged: its manifest_sha256 does not match its content");

  CheckpointManifest m;
  m.format_version = kCheckpointFormatVersion;
  m.created_by = string_field(j, "created_by", file, where);
  const uint64_t step = unsigned_field(j, "step", file, where);
  HYDRA_CHECK(step <= static_cast<uint64_t>(INT64_MAX), file, ": step ", step, " is too large");
  m.step = static_cast<int64_t>(step);
  const json& files = field(j, "files", file, where);
  HYDRA_CHECK(files.is_object(), file, ": the manifest field 'files' must be an object");
  for (const auto& [name, rec] : files.items()) {
    HYDRA_CHECK(name == kConfig || name == kWeights || name == kState || name == kAdapterConfigFile ||
                    name == kAdapterWeightsFile,
                file, ": the manifest lists an unexpected file '", name, "'; a checkpoint holds ", kConfig, ", ",
                kWeights, " and ", kState, " (and with LoRA adapters ", kAdapterConfigFile, " and ",
                kAdapterWeightsFile, ")");
    const std::string rec_where = "the entry of '" + name + "'";
    HYDRA_CHECK(rec.is_object(), file, ": ", rec_where, " must be an object");
    m.files[name] = {sha256_field(rec, file, rec_where), unsigned_field(rec, "bytes", file, rec_where)};
  }
  for (const char* name : {kConfig, kWeights, kState})
    HYDRA_CHECK(m.files.count(name), file, ": the manifest does not list '", name, "'");
  HYDRA_CHECK(m.files.count(kAdapterConfigFile) == m.files.count(kAdapterWeightsFile), file,
              ": the manifest lists one of ", kAdapterConfigFile, " and ", kAdapterWeightsFile,
              " without the other (LoRA adapters need both)");
  const json& data = field(j, "data_files", file, where);
  HYDRA_CHECK(data.is_array(), file, ": the manifest field 'data_files' must be an array");
  for (size_t i = 0; i < data.size(); ++i) {
    const std::string rec_where = "data_files[" + std::to_string(i) + "]";
    HYDRA_CHECK(data[i].is_object(), file, ": ", rec_where, " must be an object");
    DataFileRecord d;
    d.path = string_field(data[i], "path", file, rec_where);
    HYDRA_CHECK(!d.path.empty(), file, ": ", rec_where, " has an empty path");
    d.sha256 = sha256_field(data[i], file, rec_where);
    d.bytes = unsigned_field(data[i], "bytes", file, rec_where);
    m.data_files.push_back(std::move(d));
  }
  return m;
}

TrainingState parse_training_state(std::string_view bytes, const std::string& file) {
  const io::SafetensorsHeader header = io::parse_safetensors_header(bytes, bytes.size(), file);
  auto format = header.metadata.find("format");
  HYDRA_CHECK(format != header.metadata.end() && format->second == kStateFormat, file,
              ": not a Hydra training state (its safetensors __metadata__ lacks format \"", kStateFormat, "\")");
  auto text = header.metadata.find("training_state");
  HYDRA_CHECK(text != header.metadata.end(), file, ": the __metadata__ lacks 'training_state'");
  const json j = io::parse_json_text(text->second, file + " (its training_state metadata)");
  HYDRA_CHECK(j.is_object(), file, ": the training_state metadata must be a JSON object");
  const std::string where = "the training state";
  TrainingState s;
  for (auto [key, out] : {std::pair<const char*, int64_t*>{"step", &s.step}, {"tokens_seen", &s.tokens_seen}}) {
    const uint64_t v = unsigned_field(j, key, file, where);
    HYDRA_CHECK(v <= static_cast<uint64_t>(INT64_MAX), file, ": ", key, " ", v, " is too large");
    *out = static_cast<int64_t>(v);
  }
  s.optimizer = field(j, "optimizer", file, where);
  s.schedule = field(j, "schedule", file, where);
  s.data_loader = field(j, "data_loader", file, where);
  s.run_config = field(j, "run_config", file, where);
  s.progress = field(j, "progress", file, where);
  const json& rng = field(j, "rng", file, where);
  HYDRA_CHECK(rng.is_object(), file, ": the training state field 'rng' must be an object");
  for (const auto& [name, r] : rng.items()) {
    const std::string rng_where = "rng stream '" + name + "'";
    HYDRA_CHECK(r.is_object(), file, ": ", rng_where, " must be an object");
    s.rng[name] = {unsigned_field(r, "seed", file, rng_where), unsigned_field(r, "offset", file, rng_where)};
  }
  for (const io::SafetensorsTensorInfo& t : header.tensors) {
    DType dtype = DType::Float32;
    HYDRA_CHECK(io::safetensors_dtype_from_name(t.dtype, &dtype), file, ": tensor '", t.name, "' has dtype ",
                t.dtype, "; expected F32, F64, I32 or I64");
    Tensor x = empty(t.shape, dtype);
    const uint64_t nbytes = t.data_end - t.data_begin;
    if (nbytes > 0) std::memcpy(x.raw_data(), bytes.data() + header.data_start + t.data_begin, nbytes);
    s.optimizer_tensors.emplace(t.name, std::move(x));
  }
  return s;
}

void save_checkpoint(const std::string& dir, const HydraTransformer& model, const TrainingState& state,
                     const std::vector<DataFileRecord>& data_files, const SaveCheckpointOptions& options) {
  HYDRA_CHECK(state.step >= 0 && state.tokens_seen >= 0, "save_checkpoint ", dir,
              ": step and tokens_seen must be non-negative, got ", state.step, " and ", state.tokens_seen);
  std::string state_text;
  try {
    state_text = state_json(state).dump();
  } catch (const json::exception& e) {
    throw Error("save_checkpoint " + dir + ": the training state holds a string that is not valid UTF-8 (" +
                e.what() + ")");
  }
  io::DirectoryWriter out(dir, /*replace=*/true);
  write_model_files(out.temp_dir(), model);

  // The training state: a safetensors file (a scratch file in the temp dir), streamed through zstd.
  const std::string scratch = out.file(".training_state.safetensors");
  io::save_safetensors(scratch, state.optimizer_tensors, {{"format", kStateFormat}, {"training_state", state_text}});
  {
    io::AtomicFile compressed(out.file(kState));
    io::zstd_compress_file(scratch, [&](const char* p, size_t n) { compressed.write(p, n); }, options.zstd_level);
    compressed.commit();
  }
  std::error_code ec;
  fs::remove(scratch, ec);
  HYDRA_CHECK(!ec, "cannot remove ", scratch, ": ", ec.message());

  CheckpointManifest m;
  m.created_by = options.created_by;
  m.step = state.step;
  // Digests of the bytes as they are on disk (read back after the fsync), not of what was meant to be written.
  std::vector<const char*> names = {kConfig, kWeights, kState};
  if (has_lora_adapters(model)) names.insert(names.end(), {kAdapterConfigFile, kAdapterWeightsFile});
  for (const char* name : names)
    m.files[name] = {io::sha256_file_hex(out.file(name)), size_of(out.file(name), "checkpoint file")};
  m.data_files = data_files;
  io::write_file_atomic(out.file(kManifest), checkpoint_manifest_text(m));
  out.commit();
}

Checkpoint load_checkpoint(const std::string& dir) {
  Checkpoint c;
  c.path = io::committed_directory(dir);
  std::error_code ec;
  HYDRA_CHECK(fs::is_directory(c.path, ec), "checkpoint directory '", dir, "' does not exist");
  const std::string manifest_path = (fs::path(c.path) / kManifest).string();
  HYDRA_CHECK(fs::exists(manifest_path, ec), "'", c.path, "' is not a Hydra checkpoint: it has no ", kManifest);
  c.manifest = parse_checkpoint_manifest(io::read_file(manifest_path, "checkpoint manifest", kMaxManifestBytes),
                                         manifest_path);

  std::string state_bytes;
  for (const auto& [name, rec] : c.manifest.files) {
    const std::string path = (fs::path(c.path) / name).string();
    const io::InputFile in = io::InputFile::open(path, "checkpoint file");
    HYDRA_CHECK(in.size() == rec.bytes, "checkpoint file ", path, " is ", in.size(), " bytes but the manifest lists ",
                rec.bytes, " (truncated or replaced)");
    std::string digest;
    if (name == kState) {
      state_bytes = in.read_all(rec.bytes);  // read once: hashed here, decompressed below
      digest = io::sha256_hex(state_bytes);
    } else {
      digest = io::sha256_file_hex(in);
    }
    HYDRA_CHECK(digest == rec.sha256, "checkpoint file ", path, " is corrupt: its sha256 is ", digest,
                " but the manifest lists ", rec.sha256);
  }

  const std::string state_path = (fs::path(c.path) / kState).string();
  // zstd verifies the frame checksum while decompressing.
  const std::string plain = io::zstd_decompress(state_bytes, state_path, kMaxStateBytes);
  c.state = parse_training_state(plain, state_path + " (decompressed)");
  HYDRA_CHECK(c.state.step == c.manifest.step, state_path, ": the training state is at step ", c.state.step,
              " but the manifest says step ", c.manifest.step);
  c.model = load_model_dir(c.path, DType::Float32, WeightPlacement::InMemory);  // to train on (model_dir.h)
  return c;
}

void verify_data_files(const CheckpointManifest& manifest) {
  for (const DataFileRecord& d : manifest.data_files) {
    const io::InputFile in = io::InputFile::open(d.path, "data file");
    HYDRA_CHECK(in.size() == d.bytes, "data file ", d.path, " is ", in.size(), " bytes but the checkpoint recorded ",
                d.bytes, "; it is not the data this run trained on");
    const std::string digest = io::sha256_file_hex(in);
    HYDRA_CHECK(digest == d.sha256, "data file ", d.path, " has sha256 ", digest, " but the checkpoint recorded ",
                d.sha256, "; it is not the data this run trained on");
  }
}

}  // namespace hydra::train
