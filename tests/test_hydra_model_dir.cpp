// hydra/model_dir: loading without waste and without trust. A model directory's float32 weights are used
// in place (views of a copy-on-write mapping: writing to them leaves the file as it was) and give the
// same model, bit for bit, as copying them; F16/BF16 weights are widened; a weight file that does not
// match its config (names, shapes, dtypes) is refused before anything is built, and NaN/Inf weights are
// refused naming the first tensor that holds one. Converting HF weights streams each tensor into an
// uninitialised model, with the same refusals.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <tuple>

#include <nlohmann/json.hpp>

#include "autograd/grad_mode.h"
#include "hydra/hf_olmo2.h"
#include "hydra/model_dir.h"
#include "io/safetensors.h"
#include "io/safetensors_index.h"
#include "io/sha256.h"
#include "support/op_harness.h"
#include "support/temp_dir.h"
#include "tensor/allocator.h"

using namespace hydra;
using test::TempDir;

namespace {

void expect_error(const std::string& name, const std::function<void()>& call, const std::vector<std::string>& parts) {
  test::check_error_case({name, call, parts});
}

// The address ranges where `path` is mapped into this process (from /proc/self/maps).
std::vector<std::pair<uintptr_t, uintptr_t>> mapped_ranges(const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  std::vector<std::pair<uintptr_t, uintptr_t>> out;
  std::string line;
  const std::string canonical = std::filesystem::canonical(path).string();
  while (std::getline(maps, line)) {
    if (!line.ends_with(canonical)) continue;
    uintptr_t lo = 0, hi = 0;
    std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi);
    out.push_back({lo, hi});
  }
  return out;
}

bool inside(const std::vector<std::pair<uintptr_t, uintptr_t>>& ranges, const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  for (const auto& [lo, hi] : ranges)
    if (a >= lo && a < hi) return true;
  return false;
}

// A safetensors file written byte by byte: (name, dtype, shape, data) in this order.
using RawTensor = std::tuple<std::string, std::string, Shape, std::string>;
void write_raw_safetensors(const std::string& path, const std::vector<RawTensor>& tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::string data;
  for (const auto& [name, dtype, shape, bytes] : tensors) {
    header[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {data.size(), data.size() + bytes.size()}}};
    data += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t n = text.size();
  std::string file(reinterpret_cast<const char*>(&n), 8);
  test::write_bytes(path, file + text + data);
}

// Exact 16-bit forms of floats that have them (normal numbers and zero, few mantissa bits).
uint16_t to_bf16(float v) { return static_cast<uint16_t>(std::bit_cast<uint32_t>(v) >> 16); }
uint16_t to_f16(float v) {
  const uint32_t bits = std::bit_cast<uint32_t>(v);
  if ((bits & 0x7fffffffu) == 0) return static_cast<uint16_t>(bits >> 16);
  const uint32_t sign = bits >> 31, exponent = ((bits >> 23) & 0xff) - 127 + 15, mantissa = (bits >> 13) & 0x3ff;
  return static_cast<uint16_t>((sign << 15) | (exponent << 10) | mantissa);
}

std::string float_bytes(const Tensor& t) {
  const Tensor c = t.is_contiguous() ? t : Tensor();
  REQUIRE(c.defined());
  return std::string(static_cast<const char*>(c.raw_data()), static_cast<size_t>(c.numel()) * 4);
}

// The tiny model's tensors as RawTensors (F32), so a test can change one.
std::vector<RawTensor> raw_state(const HydraTransformer& model) {
  std::vector<RawTensor> out;
  for (const auto& [name, t] : model.state_dict()) out.emplace_back(name, "F32", t.shape(), float_bytes(t));
  return out;
}

RawTensor& find(std::vector<RawTensor>& state, const std::string& name) {
  for (RawTensor& t : state)
    if (std::get<0>(t) == name) return t;
  FAIL("no tensor ", name);
  return state.front();
}

// A model directory with the tiny config and these weights.
std::string model_dir_with(const TempDir& dir, const std::string& name, const HydraTransformerConfig& config,
                           const std::vector<RawTensor>& weights) {
  const std::string path = dir.file(name);
  std::filesystem::create_directories(path);
  test::write_bytes(path + "/config.json", config.to_json().dump());
  write_raw_safetensors(path + "/model.safetensors", weights);
  return path;
}

}  // namespace

TEST_CASE("load_model_dir: float32 weights are used in place, copy-on-write, and equal the saved model") {
  TempDir dir;
  const auto config = HydraTransformerConfig::preset("tiny");
  const auto saved = config.build("cpu", 5);
  save_model_dir(dir.file("m"), *saved);
  const std::string weights = dir.file("m") + "/model.safetensors";
  const std::string digest = io::sha256_file_hex(weights);

  auto loaded = load_model_dir(dir.file("m"));
  CHECK(!loaded->is_meta());
  const auto ranges = mapped_ranges(weights);
  REQUIRE(!ranges.empty());
  const auto saved_state = saved->state_dict();
  for (const auto& entry : loaded->state_dict()) {
    const std::string& name = entry.first;  // (not a structured binding: clang 14 cannot capture those)
    const Tensor& t = entry.second;
    INFO(name);
    CHECK(inside(ranges, t.raw_data()));  // a view of the mapping: nothing was copied
    CHECK(float_bytes(t) == float_bytes(saved_state.at(name)));
  }
  // The same logits as the model it was saved from (and as a copy into a fresh slab).
  NoGradGuard no_grad;
  const Tensor ids = from_vector<int64_t>({1, 2, 3, 4000, 5, 6}, {2, 3});
  const Tensor want = saved->forward(ids);
  CHECK(float_bytes(loaded->forward(ids)) == float_bytes(want));
  auto copied = config.build("empty");
  copied->load_state_dict(loaded->state_dict());
  CHECK(float_bytes(copied->forward(ids)) == float_bytes(want));

  // Writing in place (as an optimizer step does) changes this process's pages only, never the file.
  Tensor& w = loaded->trunk.blocks[0]->attention.w_q.weight;
  std::fill(w.data<float>(), w.data<float>() + w.numel(), 7.0f);
  CHECK(w.data<float>()[3] == 7.0f);
  CHECK(io::sha256_file_hex(weights) == digest);
  CHECK(float_bytes(load_model_dir(dir.file("m"))->forward(ids)) == float_bytes(want));
}

TEST_CASE("load_model_dir in memory: the weights are read into one slab of the model's own, the same model") {
  TempDir dir;
  const auto config = HydraTransformerConfig::preset("tiny");
  const auto saved = config.build("cpu", 5);
  save_model_dir(dir.file("m"), *saved);
  const std::string weights = dir.file("m") + "/model.safetensors";

  auto loaded = load_model_dir(dir.file("m"), DType::Float32, WeightPlacement::InMemory);
  CHECK(mapped_ranges(weights).empty());  // read, not mapped: nothing of the file stays in the process
  const auto saved_state = saved->state_dict();
  const Tensor& first = loaded->trunk.embeddings.weight;
  for (const auto& entry : loaded->state_dict()) {
    INFO(entry.first);
    CHECK(entry.second.shares_storage_with(first));  // one slab, as a built model has
    CHECK(entry.second.requires_grad());
    CHECK(float_bytes(entry.second) == float_bytes(saved_state.at(entry.first)));
  }
  NoGradGuard no_grad;
  const Tensor ids = from_vector<int64_t>({1, 2, 3, 4000, 5, 6}, {2, 3});
  CHECK(float_bytes(loaded->forward(ids)) == float_bytes(saved->forward(ids)));
  expect_error("bf16 in memory", [&] { load_model_dir(dir.file("m"), DType::BFloat16, WeightPlacement::InMemory); },
               {"bfloat16 weights are loaded from the file mapping only"});
}

TEST_CASE("load_model_dir: F16 and BF16 weights are widened exactly") {
  TempDir dir;
  const auto config = HydraTransformerConfig::preset("tiny");
  const auto model = config.build("cpu", 2);
  auto weights = raw_state(*model);
  // Two tensors stored in 16 bits: values exactly representable (multiples of 1/16 in [-2, 2]).
  const std::vector<std::pair<std::string, bool>> narrowed = {{"lm_head.norm.weight", true},
                                                              {"trunk.blocks.1.attention.k_norm.weight", false}};
  std::map<std::string, std::vector<float>> expected;
  for (const auto& [name, bf16] : narrowed) {
    RawTensor& t = find(weights, name);
    const int64_t n = shape_numel(std::get<2>(t));
    std::string bytes;
    for (int64_t i = 0; i < n; ++i) {
      const float v = static_cast<float>((i * 7) % 64 - 32) / 16.0f;
      expected[name].push_back(v);
      const uint16_t h = bf16 ? to_bf16(v) : to_f16(v);
      bytes.append(reinterpret_cast<const char*>(&h), 2);
    }
    t = RawTensor{name, bf16 ? "BF16" : "F16", std::get<2>(t), bytes};
  }
  const std::string m = model_dir_with(dir, "m", config, weights);
  for (const WeightPlacement placement : {WeightPlacement::FileMapping, WeightPlacement::InMemory}) {
    const auto loaded = load_model_dir(m, DType::Float32, placement);
    for (const auto& [name, values] : expected) CHECK(loaded->state_dict().at(name).to_vector<float>() == values);
  }
}

TEST_CASE("load_model_dir refuses, before building anything, weights that do not match the config") {
  TempDir dir;
  const auto config = HydraTransformerConfig::preset("tiny");
  const auto model = config.build("cpu", 3);
  const std::string w = "/model.safetensors";

  auto weights = raw_state(*model);
  weights.erase(std::remove_if(weights.begin(), weights.end(),
                               [](const RawTensor& t) { return std::get<0>(t) == "lm_head.norm.weight"; }),
                weights.end());
  std::string m = model_dir_with(dir, "missing", config, weights);
  expect_error("missing", [&] { load_model_dir(m); },
               {m + w, "does not hold the model its config.json describes", "1 missing: lm_head.norm.weight"});

  weights = raw_state(*model);
  weights.emplace_back("trunk.extra", "F32", Shape{2}, std::string(8, '\0'));
  m = model_dir_with(dir, "extra", config, weights);
  expect_error("unexpected", [&] { load_model_dir(m); }, {m + w, "1 unexpected: trunk.extra"});

  weights = raw_state(*model);
  find(weights, "trunk.blocks.0.feed_forward.w2.weight") =
      RawTensor{"trunk.blocks.0.feed_forward.w2.weight", "F32", Shape{1024, 256}, std::string(1024 * 256 * 4, '\0')};
  m = model_dir_with(dir, "shape", config, weights);
  expect_error("shape", [&] { load_model_dir(m); },
               {m + w, "with another shape: trunk.blocks.0.feed_forward.w2.weight (config [256, 1024], file [1024, 256])"});

  // Integer weights are not cast to float: refused naming the tensor.
  weights = raw_state(*model);
  RawTensor& ints = find(weights, "trunk.blocks.1.attention_norm.weight");
  ints = RawTensor{std::get<0>(ints), "I32", std::get<2>(ints), std::get<3>(ints)};
  m = model_dir_with(dir, "ints", config, weights);
  expect_error("I32", [&] { load_model_dir(m); },
               {m + w, "tensor 'trunk.blocks.1.attention_norm.weight' is I32; expected float weights (F32, F16 or BF16)"});

  // A config for the 75M-parameter preset beside the tiny weights: refused from the header alone, with
  // no allocation of the model (the allocator's bytes in use do not move).
  m = model_dir_with(dir, "small", HydraTransformerConfig::preset("small"), raw_state(*model));
  const size_t in_use = allocator_stats().in_use_bytes;
  expect_error("small config, tiny weights", [&] { load_model_dir(m); },
               {m + w, "does not hold the model", "with another shape: trunk.embeddings.weight"});
  CHECK(allocator_stats().in_use_bytes == in_use);
}

TEST_CASE("load_model_dir refuses NaN and infinite weights, naming the first tensor that holds one") {
  TempDir dir;
  const auto config = HydraTransformerConfig::preset("tiny");
  const auto model = config.build("cpu", 4);
  auto poison = [&](std::vector<RawTensor>& weights, const std::string& name, int64_t index, float value) {
    std::string& bytes = std::get<3>(find(weights, name));
    std::memcpy(bytes.data() + 4 * index, &value, 4);
  };
  auto weights = raw_state(*model);
  poison(weights, "trunk.blocks.1.feed_forward.w3.weight", 100000, std::numeric_limits<float>::infinity());
  poison(weights, "heads.2.blocks.0.attention.w_q.weight", 5, std::nanf(""));  // later in name order
  std::string m = model_dir_with(dir, "nan", config, weights);
  for (const WeightPlacement placement : {WeightPlacement::FileMapping, WeightPlacement::InMemory})
    expect_error("inf first", [&] { load_model_dir(m, DType::Float32, placement); },
                 {m + "/model.safetensors", "tensor 'heads.2.blocks.0.attention.w_q.weight' holds nan at index 5",
                  "NaN and infinite weights are refused"});
  weights = raw_state(*model);
  poison(weights, "lm_head.w_out.weight", 1048575, -std::numeric_limits<float>::infinity());
  m = model_dir_with(dir, "inf", config, weights);
  expect_error("inf", [&] { load_model_dir(m); }, {"tensor 'lm_head.w_out.weight' holds -inf at index 1048575"});
}

TEST_CASE("build(\"empty\") + load_state_dict equals build(\"cpu\"); assign_state_dict takes only contiguous float32 or bfloat16") {
  const auto config = HydraTransformerConfig::preset("tiny");
  const auto a = config.build("cpu", 9);
  const auto b = config.build("empty");
  b->load_state_dict(a->state_dict());
  for (const auto& [name, t] : a->state_dict()) CHECK(float_bytes(t) == float_bytes(b->state_dict().at(name)));
  auto meta = config.build("meta");
  CHECK(meta->is_meta());
  auto state = a->state_dict();
  state["lm_head.norm.weight"] = zeros({256}, DType::Float64);
  expect_error("float64", [&] { meta->assign_state_dict(state); },
               {"assign_state_dict: tensor 'lm_head.norm.weight' must be a contiguous float32 or bfloat16 tensor", "float64"});
  state = a->state_dict();
  state.erase("lm_head.norm.weight");
  expect_error("missing", [&] { meta->assign_state_dict(state); }, {"assign_state_dict", "1 missing: lm_head.norm.weight"});
  CHECK(meta->is_meta());  // nothing was assigned
  meta->assign_state_dict(a->state_dict());
  CHECK(!meta->is_meta());
  CHECK(meta->trunk.embeddings.weight.raw_data() == a->trunk.embeddings.weight.raw_data());  // shared, not copied
}

TEST_CASE("convert streams HF weights into an unfilled model and refuses integer and NaN weights by HF name") {
  const char* root = std::getenv("HYDRA_SOURCE_DIR");
  REQUIRE_MESSAGE(root != nullptr, "HYDRA_SOURCE_DIR is not set (CTest sets it to the repository root)");
  const std::string fixture = std::string(root) + "/tests/fixtures/hf_olmo2_tiny";
  const auto hf = io::load_safetensors_checkpoint(fixture);
  std::vector<RawTensor> weights;
  for (const auto& [name, t] : hf) weights.emplace_back(name, "F32", t.shape(), float_bytes(t));
  TempDir dir;
  auto hf_dir_with = [&](const std::string& name, const std::vector<RawTensor>& w) {
    const std::string path = dir.file(name);
    std::filesystem::create_directories(path);
    std::filesystem::copy_file(fixture + "/config.json", path + "/config.json");
    write_raw_safetensors(path + "/model.safetensors", w);
    return path;
  };
  // The single-file copy converts to the same model as the sharded fixture, padded rows zero.
  const auto model = load_hf_olmo2(hf_dir_with("good", weights), 3, 2, 320);
  const auto reference = load_hf_olmo2(fixture, 3, 2, 320);
  for (const auto& [name, t] : reference->state_dict()) CHECK(float_bytes(t) == float_bytes(model->state_dict().at(name)));
  CHECK(model->trunk.embeddings.weight.to_vector<float>()[319 * 48] == 0.0f);

  auto ints = weights;
  RawTensor& norm = find(ints, "model.layers.1.post_attention_layernorm.weight");
  norm = RawTensor{std::get<0>(norm), "I32", std::get<2>(norm), std::get<3>(norm)};
  const std::string ints_dir = hf_dir_with("ints", ints);
  expect_error("I32", [&] { load_hf_olmo2(ints_dir, 3, 2); },
               {ints_dir, "tensor 'model.layers.1.post_attention_layernorm.weight' is I32; expected F32, F16 or BF16"});
  auto nan = weights;
  const float bad = std::nanf("");
  std::memcpy(std::get<3>(find(nan, "model.layers.3.mlp.down_proj.weight")).data() + 4 * 17, &bad, 4);
  const std::string nan_dir = hf_dir_with("nan", nan);
  expect_error("NaN", [&] { load_hf_olmo2(nan_dir, 3, 2); },
               {nan_dir, "tensor 'model.layers.3.mlp.down_proj.weight' holds nan at index 17"});
}
