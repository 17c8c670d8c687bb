// train/checkpoint and io/atomic_dir: a full round trip (weights, every TrainingState field, the
// manifest), replacing a checkpoint, the directory as a kill would leave it at every step of the commit
// (snapshotted from inside the protocol) and after a half-written save, one damaged file at a time
// (a flipped byte in each file, truncation, a bad zstd frame, a wrong format version), one literal per
// manifest and training-state rejection rule, random corruptions of both parsers' input, and a child
// process SIGKILLed at random instants while it saves over and over.
#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "hydra/hydra_transformer.h"
#include "hydra/model_dir.h"
#include "io/atomic_dir.h"
#include "io/safetensors.h"
#include "io/sha256.h"
#include "support/op_harness.h"
#include "support/temp_dir.h"
#include "tensor/random.h"
#include "train/checkpoint.h"

using namespace hydra;
using namespace hydra::train;
namespace fs = std::filesystem;
using json = nlohmann::json;

using test::read_bytes;
using test::TempDir;
using test::write_bytes;

namespace {

// Names in a directory, sorted (hidden ones included).
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// A two-head model small enough to copy many times: vocab 64, d 16, trunk 1 block + 2 heads x 1 block.
std::unique_ptr<HydraTransformer> tiny_model(uint64_t seed) {
  HydraTransformerConfig c;
  c.base_config.vocab_size = 64;
  c.base_config.d_model = 16;
  c.base_config.n_layers = 2;
  c.base_config.n_heads = 2;
  c.base_config.n_kv_heads = 2;
  c.base_config.head_dim = 8;
  c.base_config.hidden_size = 32;
  c.n_heads = 2;
  c.trunk_layers = 1;
  c.head_layers = 1;
  return c.build("cpu", seed);
}

// A training state with every kind of field: AdamW moments per parameter, an int64 tensor, per-head
// data positions, several RNG streams (one at the uint64 limits).
TrainingState sample_state(const HydraTransformer& model, int64_t step) {
  TrainingState s;
  s.step = step;
  s.tokens_seen = step * 4096;
  Generator g(static_cast<uint64_t>(step));
  for (const auto& [name, p] : model.named_parameters()) {
    s.optimizer_tensors["exp_avg." + name] = g.normal(p->shape());
    s.optimizer_tensors["exp_avg_sq." + name] = g.uniform(p->shape());
  }
  s.optimizer_tensors["step_per_group"] = from_vector(std::vector<int64_t>{step, step}, {2});
  s.optimizer = {{"kind", "adamw"}, {"betas", {0.9, 0.95}}, {"eps", 1e-8}, {"weight_decay", 0.1}};
  s.schedule = {{"kind", "cosine"}, {"warmup_steps", 100}, {"max_steps", 10000}, {"lr", 3e-4}};
  s.data_loader = {{"heads", {{{"file", 0}, {"position", 12345 + step}}, {{"file", 1}, {"position", 7}}}},
                   {"epoch", 2}, {"order_seed", 99}};
  s.rng["data"] = {1234, static_cast<uint64_t>(step) * 1000};
  s.rng["dropout"] = {std::numeric_limits<uint64_t>::max(), std::numeric_limits<uint64_t>::max() - 1};
  s.run_config = {{"batch_size", 8}, {"seq_len", 128}, {"heads", "0,1"}};
  s.progress = {{"best_val_loss", 2.5}, {"elapsed_s", 12.25}};
  return s;
}

void check_same_state(const TrainingState& a, const TrainingState& b) {
  CHECK(a.step == b.step);
  CHECK(a.tokens_seen == b.tokens_seen);
  CHECK(a.optimizer == b.optimizer);
  CHECK(a.schedule == b.schedule);
  CHECK(a.data_loader == b.data_loader);
  CHECK(a.rng == b.rng);
  CHECK(a.run_config == b.run_config);
  CHECK(a.progress == b.progress);
  REQUIRE(a.optimizer_tensors.size() == b.optimizer_tensors.size());
  for (const auto& entry : a.optimizer_tensors) {
    const std::string& name = entry.first;
    const Tensor& t = entry.second;
    INFO(name);
    REQUIRE(b.optimizer_tensors.count(name));
    const Tensor& u = b.optimizer_tensors.at(name);
    CHECK(u.dtype() == t.dtype());
    CHECK(u.shape() == t.shape());
    CHECK(u.to_vector<double>() == t.to_vector<double>());
  }
}

void check_same_weights(const HydraTransformer& a, const HydraTransformer& b) {
  const auto sa = a.state_dict(), sb = b.state_dict();
  REQUIRE(sa.size() == sb.size());
  for (const auto& entry : sa) {
    const std::string& name = entry.first;
    const Tensor& t = entry.second;
    INFO(name);
    CHECK(sb.at(name).to_vector<float>() == t.to_vector<float>());
  }
}

void expect_error(const std::string& name, const std::function<void()>& call,
                  const std::vector<std::string>& must_contain) {
  test::check_error_case({name, call, must_contain});
}

// Rewrites a checkpoint's manifest so that it lists the files as they now are (to reach the checks
// behind the sha256 one).
void relist(const std::string& dir) {
  const std::string manifest_path = (fs::path(dir) / "manifest.json").string();
  CheckpointManifest m = parse_checkpoint_manifest(read_bytes(manifest_path), manifest_path);
  for (auto& [name, rec] : m.files) {
    const std::string p = (fs::path(dir) / name).string();
    rec = {io::sha256_file_hex(p), static_cast<uint64_t>(fs::file_size(p))};
  }
  write_bytes(manifest_path, checkpoint_manifest_text(m));
}

// A manifest's JSON with its digest recomputed after an edit.
std::string redigest(json j) {
  j.erase("manifest_sha256");
  j["manifest_sha256"] = io::sha256_hex(j.dump());
  return j.dump(2);
}

}  // namespace

TEST_CASE("save_checkpoint then load_checkpoint gives back the weights, every state field and the manifest") {
  TempDir dir;
  write_bytes(dir.file("train.bin"), std::string(1000, 'x'));
  write_bytes(dir.file("val.bin"), "abc");
  const std::vector<DataFileRecord> data = {describe_data_file(dir.file("train.bin")),
                                            describe_data_file(dir.file("val.bin"))};
  CHECK(data[1].sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(data[1].bytes == 3);

  auto model = tiny_model(5);
  const TrainingState state = sample_state(*model, 42);
  const std::string ckpt = dir.file("ckpt");
  save_checkpoint(ckpt, *model, state, data, {.created_by = "hydra test"});
  CHECK(listing(ckpt) ==
        std::vector<std::string>{"config.json", "manifest.json", "model.safetensors", "training_state.bin.zst"});
  CHECK(listing(dir.path) == std::vector<std::string>{"ckpt", "train.bin", "val.bin"});  // no temp left

  const Checkpoint c = load_checkpoint(ckpt);
  CHECK(c.path == ckpt);
  check_same_weights(*model, *c.model);
  check_same_state(state, c.state);
  CHECK(c.manifest.format_version == 1);
  CHECK(c.manifest.created_by == "hydra test");
  CHECK(c.manifest.step == 42);
  CHECK(c.manifest.data_files == data);
  CHECK(c.manifest.files.at("model.safetensors").sha256 == io::sha256_file_hex(ckpt + "/model.safetensors"));
  CHECK(c.manifest.files.at("config.json").bytes == fs::file_size(ckpt + "/config.json"));
  verify_data_files(c.manifest);

  // The state file is one zstd frame with the checksum flag and the content size in its header: the
  // frame header descriptor (byte 4) has bit 2 (checksum) set and a non-zero size-field flag (bits 6-7).
  const std::string zst = read_bytes(ckpt + "/training_state.bin.zst");
  REQUIRE(zst.size() > 5);
  CHECK(zst.substr(0, 4) == std::string("\x28\xb5\x2f\xfd", 4));
  CHECK((static_cast<unsigned char>(zst[4]) & 0x04) != 0);
  CHECK((static_cast<unsigned char>(zst[4]) >> 6) != 0);
  // The manifest is readable JSON with the documented fields.
  const json m = json::parse(read_bytes(ckpt + "/manifest.json"));
  CHECK(m["format"] == "hydra-checkpoint");
  CHECK(m["format_version"] == 1);
  CHECK(m["data_files"][0]["path"] == dir.file("train.bin"));
  CHECK(m["files"].size() == 3);

  // An empty training state (step 0, no tensors) round-trips too.
  save_checkpoint(ckpt, *model, TrainingState{}, {});
  const Checkpoint empty = load_checkpoint(ckpt);
  check_same_state(TrainingState{}, empty.state);
  CHECK(empty.manifest.data_files.empty());
}

TEST_CASE("saving over a checkpoint replaces it and leaves nothing else behind") {
  TempDir dir;
  const std::string ckpt = dir.file("ckpt");
  auto m1 = tiny_model(1), m2 = tiny_model(2);
  save_checkpoint(ckpt, *m1, sample_state(*m1, 1), {});
  save_checkpoint(ckpt + "/", *m2, sample_state(*m2, 2), {});  // a trailing slash names the same directory
  const Checkpoint c = load_checkpoint(ckpt);
  CHECK(c.state.step == 2);
  check_same_weights(*m2, *c.model);
  CHECK(listing(dir.path) == std::vector<std::string>{"ckpt"});

  // save_model_dir (which shares the directory writer) still refuses to overwrite.
  expect_error("model dir exists", [&] { save_model_dir(ckpt, *m1); }, {"already exists; choose a new path"});
  expect_error("no parent", [&] { save_checkpoint(dir.file("no/such/ckpt"), *m1, TrainingState{}, {}); },
               {"parent directory", "does not exist"});
  write_bytes(dir.file("plainfile"), "x");
  expect_error("a file in the way", [&] { save_checkpoint(dir.file("plainfile"), *m1, TrainingState{}, {}); },
               {"a file of that name exists"});
}

TEST_CASE("a kill at any step of the commit leaves a loadable checkpoint, and the next save cleans up") {
  TempDir dir;
  const fs::path parent = dir.path / "run";
  fs::create_directories(parent);
  const std::string ckpt = (parent / "ckpt").string();
  auto old_model = tiny_model(1), new_model = tiny_model(2);
  save_checkpoint(ckpt, *old_model, sample_state(*old_model, 100), {});

  // While the new checkpoint commits, copy the whole parent directory after every step: each copy is the
  // directory exactly as a kill right after that step would leave it.
  std::vector<std::pair<std::string, fs::path>> snapshots;
  io::set_directory_commit_hook([&](const std::string& step) {
    const fs::path copy = dir.path / ("after " + step);
    fs::copy(parent, copy, fs::copy_options::recursive);
    snapshots.emplace_back(step, copy);
  });
  save_checkpoint(ckpt, *new_model, sample_state(*new_model, 200), {});
  io::set_directory_commit_hook(nullptr);
  REQUIRE(snapshots.size() == 4);

  // What a kill leaves besides the committed directory, step by step (the temp dir is
  // ".ckpt.hydra-tmp-<16 hex digits>").
  auto hidden_names = [](const fs::path& copy) {
    std::vector<std::string> names = listing(copy);
    for (std::string& n : names)
      if (n.rfind(".ckpt.hydra-tmp-", 0) == 0 && n.size() == 32) n = ".ckpt.hydra-tmp-*";
    return names;
  };
  CHECK(hidden_names(snapshots[0].second) == std::vector<std::string>{".ckpt.hydra-tmp-*", "ckpt"});
  CHECK(hidden_names(snapshots[1].second) == std::vector<std::string>{".ckpt.hydra-old", ".ckpt.hydra-tmp-*"});
  CHECK(hidden_names(snapshots[2].second) == std::vector<std::string>{".ckpt.hydra-old", "ckpt"});
  CHECK(hidden_names(snapshots[3].second) == std::vector<std::string>{"ckpt"});

  const std::map<std::string, int64_t> expected_step = {
      {"temp synced", 100}, {"old moved aside", 100}, {"new renamed in", 200}, {"old removed", 200}};
  for (const auto& snapshot : snapshots) {
    const std::string& step = snapshot.first;
    const fs::path& copy = snapshot.second;
    INFO("killed after '", step, "'");
    const std::string killed = (copy / "ckpt").string();
    const Checkpoint c = load_checkpoint(killed);
    CHECK(c.state.step == expected_step.at(step));
    check_same_weights(c.state.step == 100 ? *old_model : *new_model, *c.model);
    if (step == "old moved aside") CHECK(fs::path(c.path).filename() == ".ckpt.hydra-old");  // found aside
    // The next save repairs the directory: only the new checkpoint remains.
    save_checkpoint(killed, *new_model, sample_state(*new_model, 300), {});
    CHECK(load_checkpoint(killed).state.step == 300);
    CHECK(listing(copy) == std::vector<std::string>{"ckpt"});
  }
}

TEST_CASE("leftovers of a killed save: a half-written temp dir, a half-removed old copy; a user's look-alikes stay") {
  TempDir dir;
  const std::string ckpt = dir.file("ckpt");
  auto model = tiny_model(3);
  save_checkpoint(ckpt, *model, sample_state(*model, 7), {});
  // A writer (pid 2147483647: no such process) killed while writing its model file.
  const fs::path dead = dir.path / ".ckpt.hydra-tmp-0123456789abcdef";
  fs::create_directories(dead);
  write_bytes((dead / ".hydra-temp").string(), "hydra temp 2147483647\n");
  write_bytes((dead / "model.safetensors").string(), "partial");
  // A replace killed while removing the old copy (ckpt itself is complete).
  fs::create_directories(dir.path / ".ckpt.hydra-old");
  write_bytes((dir.path / ".ckpt.hydra-old" / ".hydra-old").string(), "hydra old\n");
  write_bytes((dir.path / ".ckpt.hydra-old" / "config.json").string(), "{");
  // A user's own directories that merely look like leftovers: no marker, a name of another form, a
  // marker naming a live process, a symlink to a marked directory.
  const std::vector<std::string> users = {".ckpt.tmp-notes", ".ckpt.hydra-tmp-notes", ".ckpt.hydra-tmp-0123456789abcdeg",
                                          ".ckpt.hydra-tmp-00000000000000aa", ".ckpt.old"};
  for (const std::string& name : users) {
    fs::create_directories(dir.path / name);
    write_bytes((dir.path / name / "notes.txt").string(), "mine");
  }
  write_bytes((dir.path / ".ckpt.hydra-tmp-00000000000000aa" / ".hydra-temp").string(),
              "hydra temp " + std::to_string(::getppid()) + "\n");
  const fs::path linked = dir.path / "elsewhere";
  fs::create_directories(linked);
  write_bytes((linked / ".hydra-temp").string(), "hydra temp 2147483647\n");
  fs::create_directory_symlink(linked, dir.path / ".ckpt.hydra-tmp-fedcba9876543210");
  CHECK(load_checkpoint(ckpt).state.step == 7);

  save_checkpoint(ckpt, *model, sample_state(*model, 8), {});
  CHECK(load_checkpoint(ckpt).state.step == 8);
  std::vector<std::string> expected = users;
  expected.insert(expected.end(), {".ckpt.hydra-tmp-fedcba9876543210", "ckpt", "elsewhere"});
  std::sort(expected.begin(), expected.end());
  CHECK(listing(dir.path) == expected);
  for (const std::string& name : users) CHECK(read_bytes((dir.path / name / "notes.txt").string()) == "mine");
  CHECK(fs::exists(linked / ".hydra-temp"));

  // recover_directory alone puts a marked aside copy back when the directory itself is gone.
  for (const std::string& name : users) fs::remove_all(dir.path / name);
  fs::remove(dir.path / ".ckpt.hydra-tmp-fedcba9876543210");
  fs::remove_all(linked);
  write_bytes(ckpt + "/.hydra-old", "hydra old\n");
  fs::rename(ckpt, dir.path / ".ckpt.hydra-old");
  CHECK(io::committed_directory(ckpt) == (dir.path / ".ckpt.hydra-old").string());
  io::recover_directory(ckpt);
  CHECK(listing(dir.path) == std::vector<std::string>{"ckpt"});
  CHECK(!fs::exists(ckpt + "/.hydra-old"));
  CHECK(load_checkpoint(ckpt).state.step == 8);
  // An unmarked aside copy is not ours: neither found by readers nor moved.
  fs::rename(ckpt, dir.path / ".ckpt.hydra-old");
  fs::remove(dir.path / ".ckpt.hydra-old" / ".hydra-old");
  CHECK(io::committed_directory(ckpt) == ckpt);
  io::recover_directory(ckpt);
  CHECK(listing(dir.path) == std::vector<std::string>{".ckpt.hydra-old"});
}

TEST_CASE("a damaged checkpoint names the file and what is wrong") {
  TempDir dir;
  const std::string good = dir.file("good");
  auto model = tiny_model(4);
  save_checkpoint(good, *model, sample_state(*model, 9), {});
  int counter = 0;
  // A fresh copy of the good checkpoint to damage.
  auto copy = [&] {
    const std::string c = dir.file("bad" + std::to_string(counter++));
    fs::copy(good, c, fs::copy_options::recursive);
    return c;
  };
  auto flip = [](const std::string& path, size_t at) {
    std::string b = read_bytes(path);
    REQUIRE(at < b.size());
    b[at] ^= 0x01;
    write_bytes(path, b);
  };

  // One flipped byte in each data file: caught by its sha256.
  for (const char* name : {"config.json", "model.safetensors", "training_state.bin.zst"}) {
    const std::string c = copy();
    const std::string path = c + "/" + name;
    flip(path, fs::file_size(path) / 2);
    expect_error(std::string("flipped byte in ") + name, [&] { load_checkpoint(c); },
                 {path, "is corrupt: its sha256 is", "but the manifest lists"});
  }
  // One flipped byte in the manifest: in a value (its own digest), in the syntax (not JSON).
  {
    const std::string c = copy();
    const std::string path = c + "/manifest.json";
    const std::string text = read_bytes(path);
    flip(path, text.find("hydra") + 1);  // inside the created_by value
    expect_error("flipped byte in the manifest", [&] { load_checkpoint(c); },
                 {path, "manifest is damaged: its manifest_sha256 does not match"});
    write_bytes(path, text);
    flip(path, 0);  // '{' -> 'z'
    expect_error("manifest not JSON", [&] { load_checkpoint(c); }, {path, "not valid JSON"});
  }
  // Truncated and missing files.
  {
    const std::string c = copy();
    const std::string path = c + "/model.safetensors";
    fs::resize_file(path, fs::file_size(path) - 10);
    expect_error("truncated weights", [&] { load_checkpoint(c); }, {path, "bytes but the manifest lists", "truncated"});
    fs::remove(c + "/training_state.bin.zst");
    expect_error("missing state", [&] { load_checkpoint(c); }, {"model.safetensors"});  // the first failing file
    fs::remove(c + "/manifest.json");
    expect_error("no manifest", [&] { load_checkpoint(c); }, {"is not a Hydra checkpoint: it has no manifest.json"});
  }
  {
    const std::string c = copy();
    fs::remove(c + "/training_state.bin.zst");
    expect_error("missing file", [&] { load_checkpoint(c); },
                 {"cannot open checkpoint file " + c + "/training_state.bin.zst", "No such file"});
  }
  // Damage the manifest cannot see (it is relisted): the zstd checks themselves.
  {
    const std::string c = copy();
    const std::string path = c + "/training_state.bin.zst";
    fs::resize_file(path, fs::file_size(path) - 7);
    relist(c);
    expect_error("truncated zstd", [&] { load_checkpoint(c); }, {path, "truncated zstd file"});
  }
  {
    const std::string c = copy();
    const std::string path = c + "/training_state.bin.zst";
    flip(path, fs::file_size(path) - 1);  // the frame checksum itself: the content decodes, the checksum differs
    relist(c);
    expect_error("zstd checksum", [&] { load_checkpoint(c); }, {path, "corrupt zstd file", "checksum"});
  }
  // Format version and kind.
  {
    const std::string c = copy();
    const std::string path = c + "/manifest.json";
    json j = json::parse(read_bytes(path));
    j["format_version"] = 2;
    write_bytes(path, redigest(j));
    expect_error("newer format", [&] { load_checkpoint(c); },
                 {path, "checkpoint format_version 2 is not supported; this Hydra reads format_version 1"});
    j["format_version"] = 1;
    j["format"] = "something-else";
    write_bytes(path, redigest(j));
    expect_error("other format", [&] { load_checkpoint(c); }, {path, "not a Hydra checkpoint manifest"});
  }
  expect_error("no directory", [&] { load_checkpoint(dir.file("nothing")); },
               {"checkpoint directory '" + dir.file("nothing") + "' does not exist"});
}

TEST_CASE("manifest rules, one literal each") {
  CheckpointManifest m;
  m.created_by = "t";
  m.step = 3;
  const std::string hex(64, 'a');
  for (const char* name : {"config.json", "model.safetensors", "training_state.bin.zst"}) m.files[name] = {hex, 10};
  m.data_files = {{"d.bin", hex, 5}};
  const json good = json::parse(checkpoint_manifest_text(m));
  const CheckpointManifest back = parse_checkpoint_manifest(checkpoint_manifest_text(m), "m.json");
  CHECK(back.step == 3);
  CHECK(back.data_files == m.data_files);
  CHECK(back.files.at("model.safetensors").bytes == 10);

  auto rejects = [&](const std::string& name, const std::string& text, const std::string& message) {
    expect_error(name, [&] { parse_checkpoint_manifest(text, "m.json"); }, {"m.json", message});
  };
  auto edited = [&](const std::function<void(json&)>& edit) {
    json j = good;
    edit(j);
    return redigest(j);
  };
  rejects("empty", "", "not valid JSON");
  rejects("array", "[]", "must be a JSON object");
  rejects("no format", "{}", "lacks the field 'format'");
  rejects("no version", R"({"format": "hydra-checkpoint"})", "lacks the field 'format_version'");
  rejects("version as string", R"({"format": "hydra-checkpoint", "format_version": "1"})",
          "format_version \"1\" is not supported");
  rejects("no digest", R"({"format": "hydra-checkpoint", "format_version": 1})", "lacks the field 'manifest_sha256'");
  rejects("digest mismatch", [&] { json j = good; j["step"] = 4; return j.dump(); }(), "manifest is damaged");
  rejects("negative step", edited([](json& j) { j["step"] = -1; }), "field 'step' must be a non-negative integer");
  rejects("no created_by", edited([](json& j) { j.erase("created_by"); }), "lacks the field 'created_by'");
  rejects("files not object", edited([](json& j) { j["files"] = json::array(); }), "'files' must be an object");
  rejects("unexpected file", edited([](json& j) { j["files"]["../etc/passwd"] = j["files"]["config.json"]; }),
          "unexpected file '../etc/passwd'");
  rejects("missing file", edited([](json& j) { j["files"].erase("model.safetensors"); }),
          "does not list 'model.safetensors'");
  rejects("bad sha", edited([](json& j) { j["files"]["config.json"]["sha256"] = "ABC"; }),
          "the entry of 'config.json' field 'sha256' must be 64 lowercase hex digits");
  rejects("bytes as float", edited([](json& j) { j["files"]["config.json"]["bytes"] = 1.5; }),
          "field 'bytes' must be a non-negative integer");
  rejects("data_files not array", edited([](json& j) { j["data_files"] = json::object(); }),
          "'data_files' must be an array");
  rejects("data file without path", edited([](json& j) { j["data_files"][0].erase("path"); }),
          "data_files[0] lacks the field 'path'");
  rejects("data file empty path", edited([](json& j) { j["data_files"][0]["path"] = ""; }), "has an empty path");
}

TEST_CASE("training-state container rules, one literal each") {
  TempDir dir;
  // The container bytes from a safetensors file with the given tensors and metadata.
  auto container = [&](const std::map<std::string, Tensor>& tensors, const std::map<std::string, std::string>& meta) {
    io::save_safetensors(dir.file("s.safetensors"), tensors, meta);
    return read_bytes(dir.file("s.safetensors"));
  };
  const json fields = {{"step", 1},        {"tokens_seen", 2}, {"optimizer", json::object()},
                       {"schedule", 3},    {"data_loader", {1, 2}}, {"rng", {{"data", {{"seed", 5}, {"offset", 6}}}}},
                       {"run_config", nullptr}, {"progress", json::object()}};
  const TrainingState s = parse_training_state(
      container({{"m", ones({2})}}, {{"format", "hydra-training-state"}, {"training_state", fields.dump()}}), "s");
  CHECK(s.step == 1);
  CHECK(s.schedule == 3);
  CHECK(s.rng.at("data") == RngState{5, 6});
  CHECK(s.optimizer_tensors.at("m").to_vector<float>() == std::vector<float>{1, 1});

  auto rejects = [&](const std::string& name, const std::string& bytes, const std::string& message) {
    expect_error(name, [&] { parse_training_state(bytes, "state.bin"); }, {"state.bin", message});
  };
  auto with_fields = [&](const std::function<void(json&)>& edit) {
    json j = fields;
    edit(j);
    return container({}, {{"format", "hydra-training-state"}, {"training_state", j.dump()}});
  };
  rejects("not safetensors", "abc", "");
  rejects("no format", container({}, {}), "lacks format \"hydra-training-state\"");
  rejects("no state", container({}, {{"format", "hydra-training-state"}}), "lacks 'training_state'");
  rejects("state not JSON", container({}, {{"format", "hydra-training-state"}, {"training_state", "{"}}),
          "(its training_state metadata): not valid JSON");
  rejects("missing step", with_fields([](json& j) { j.erase("step"); }), "lacks the field 'step'");
  rejects("negative tokens", with_fields([](json& j) { j["tokens_seen"] = -3; }),
          "field 'tokens_seen' must be a non-negative integer");
  rejects("missing schedule", with_fields([](json& j) { j.erase("schedule"); }), "lacks the field 'schedule'");
  rejects("rng not object", with_fields([](json& j) { j["rng"] = 1; }), "'rng' must be an object");
  rejects("rng without offset", with_fields([](json& j) { j["rng"]["data"].erase("offset"); }),
          "rng stream 'data' lacks the field 'offset'");
}

TEST_CASE("verify_data_files notices changed, resized and missing data") {
  TempDir dir;
  write_bytes(dir.file("a.bin"), "hello");
  CheckpointManifest m;
  m.data_files = {describe_data_file(dir.file("a.bin"))};
  verify_data_files(m);
  write_bytes(dir.file("a.bin"), "jello");
  expect_error("same size, other bytes", [&] { verify_data_files(m); },
               {dir.file("a.bin"), "has sha256", "not the data this run trained on"});
  write_bytes(dir.file("a.bin"), "hello!");
  expect_error("other size", [&] { verify_data_files(m); }, {"is 6 bytes but the checkpoint recorded 5"});
  fs::remove(dir.file("a.bin"));
  expect_error("missing", [&] { verify_data_files(m); },
               {"cannot open data file " + dir.file("a.bin") + ": No such file"});
  expect_error("describe missing", [&] { describe_data_file(dir.file("a.bin")); },
               {"cannot open data file", "No such file"});
}

TEST_CASE("SIGKILL at random instants of repeated saves always leaves the last or a newer checkpoint") {
  TempDir dir;
  const std::string ckpt = dir.file("ckpt");
  auto model = tiny_model(6);
  TrainingState state = sample_state(*model, 0);
  save_checkpoint(ckpt, *model, state, {});
  int64_t last_step = 0;
  std::mt19937 random(12345);
  for (int round = 0; round < 16; ++round) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      // The child saves with increasing steps until it is killed. It only does file I/O (no thread pool
      // work: the tensors are contiguous already), which is safe after fork().
      for (int64_t step = last_step + 1;; ++step) {
        state.step = step;
        state.rng["data"].offset = static_cast<uint64_t>(step);
        try {
          save_checkpoint(ckpt, *model, state, {});
        } catch (...) {
          ::_exit(3);
        }
      }
    }
    ::usleep(std::uniform_int_distribution<useconds_t>(1000, 120000)(random));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    INFO("round ", round);
    REQUIRE_MESSAGE(WIFSIGNALED(status), "the saving child failed on its own (exit status ", WEXITSTATUS(status), ")");
    const Checkpoint c = load_checkpoint(ckpt);
    CHECK(c.state.step >= last_step);  // never older than a save that completed
    CHECK(c.state.rng.at("data").offset == static_cast<uint64_t>(c.state.step));
    check_same_weights(*model, *c.model);
    last_step = c.state.step;
  }
  save_checkpoint(ckpt, *model, state, {});
  CHECK(listing(dir.path) == std::vector<std::string>{"ckpt"});
}

TEST_CASE("random corruptions of a manifest and a training-state container are hydra::Errors, never crashes") {
  TempDir dir;
  CheckpointManifest m;
  m.created_by = "hydra";
  for (const char* name : {"config.json", "model.safetensors", "training_state.bin.zst"})
    m.files[name] = {std::string(64, 'b'), 123};
  m.data_files = {{"data/train.bin", std::string(64, 'c'), 456}};
  const std::string manifest = checkpoint_manifest_text(m);
  auto model = tiny_model(8);
  TrainingState small;
  small.optimizer_tensors["exp_avg.x"] = ones({3});
  small.rng["data"] = {1, 2};
  io::save_safetensors(dir.file("s"), small.optimizer_tensors,
                       {{"format", "hydra-training-state"},
                        {"training_state", json({{"step", 0}, {"tokens_seen", 0}, {"optimizer", 1}, {"schedule", 2},
                                                 {"data_loader", 3}, {"rng", {{"data", {{"seed", 1}, {"offset", 2}}}}},
                                                 {"run_config", 4}, {"progress", 5}})
                                               .dump()}});
  const std::string state = read_bytes(dir.file("s"));
  REQUIRE(parse_training_state(state, "s").rng.at("data") == RngState{1, 2});

  std::mt19937 random(99);
  auto mutate = [&](std::string bytes, int trial) {
    if (trial % 4 == 3) {
      bytes.resize(std::uniform_int_distribution<size_t>(0, bytes.size() - 1)(random));
    } else {
      const int n = std::uniform_int_distribution<int>(1, 3)(random);
      for (int k = 0; k < n; ++k)
        bytes[std::uniform_int_distribution<size_t>(0, bytes.size() - 1)(random)] =
            static_cast<char>(std::uniform_int_distribution<int>(0, 255)(random));
    }
    return bytes;
  };
  for (int trial = 0; trial < 600; ++trial) {
    const std::string text = mutate(manifest, trial);
    try {
      // The manifest's own digest lets through only edits that leave every value as it was (whitespace).
      const CheckpointManifest back = parse_checkpoint_manifest(text, "manifest.json");
      CHECK(back.created_by == m.created_by);
      CHECK(back.step == m.step);
      CHECK(back.data_files == m.data_files);
      for (const auto& [name, rec] : m.files) {
        CHECK(back.files.at(name).sha256 == rec.sha256);
        CHECK(back.files.at(name).bytes == rec.bytes);
      }
    } catch (const hydra::Error&) {
    }
    try {
      parse_training_state(mutate(state, trial), "state");
    } catch (const hydra::Error&) {
    }
  }
}
