#include "nn/module.h"

#include <algorithm>
#include <cstring>
#include <fnmatch.h>
#include <sstream>

#include "autograd/grad_mode.h"
#include "tensor/bfloat16.h"
#include "tensor/copy.h"

namespace hydra::nn {

void Module::register_parameter(const std::string& name, Tensor& param, const Shape& shape) {
  for (const auto& p : params_) HYDRA_ASSERT(p.first != name, "parameter '", name, "' registered twice");
  param = meta(shape, DType::Float32);
  param.set_requires_grad(true);  // trainable until frozen, as in PyTorch (see module.h)
  params_.push_back({name, &param});
}

void Module::register_module(const std::string& name, Module& child) {
  for (const auto& c : children_) HYDRA_ASSERT(c.first != name, "module '", name, "' registered twice");
  children_.push_back({name, &child});
}

void Module::unregister_module(const std::string& name) {
  auto it = std::find_if(children_.begin(), children_.end(), [&](const auto& c) { return c.first == name; });
  HYDRA_ASSERT(it != children_.end(), "module '", name, "' is not registered");
  children_.erase(it);
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out;
  // Explicit stack of (module, path), children pushed in reverse so they pop in registration order.
  std::vector<std::pair<Module*, std::string>> stack{{this, ""}};
  while (!stack.empty()) {
    auto [m, path] = stack.back();
    stack.pop_back();
    out.push_back({path, m});
    for (auto it = m->children_.rbegin(); it != m->children_.rend(); ++it)
      stack.push_back({it->second, path.empty() ? it->first : path + "." + it->first});
  }
  return out;
}

std::vector<std::pair<std::string, Tensor*>> Module::named_parameters() {
  std::vector<std::pair<std::string, Tensor*>> out;
  for (auto& [path, m] : named_modules())
    for (auto& [name, t] : m->params_) out.push_back({path.empty() ? name : path + "." + name, t});
  return out;
}

std::vector<std::pair<std::string, const Tensor*>> Module::named_parameters() const {
  std::vector<std::pair<std::string, const Tensor*>> out;
  for (auto& [name, t] : const_cast<Module*>(this)->named_parameters()) out.push_back({name, t});
  return out;
}

StateDict Module::state_dict() const {
  StateDict out;
  for (auto& [name, t] : named_parameters()) out[name] = *t;
  return out;
}

void Module::check_state_matches(const StateDict& state, const char* op) {
  auto params = named_parameters();
  std::vector<std::string> missing, unexpected, wrong_shape;
  std::map<std::string, Tensor*> by_name;
  for (auto& [name, t] : params) by_name[name] = t;
  for (auto& [name, t] : params) {
    auto it = state.find(name);
    if (it == state.end())
      missing.push_back(name);
    else if (it->second.shape() != t->shape())
      wrong_shape.push_back(name + " (expected " + shape_str(t->shape()) + ", got " + shape_str(it->second.shape()) + ")");
  }
  for (auto& [name, t] : state)
    if (!by_name.count(name)) unexpected.push_back(name);
  if (!missing.empty() || !unexpected.empty() || !wrong_shape.empty())
    throw Error(state_mismatch_message(std::string(op) + ": the state does not match the model", missing, unexpected,
                                       wrong_shape, "with the wrong shape", 10));
}

std::string state_mismatch_message(const std::string& title, const std::vector<std::string>& missing,
                                   const std::vector<std::string>& unexpected,
                                   const std::vector<std::string>& wrong_shape, const char* wrong_what,
                                   size_t max_listed) {
  std::ostringstream os;
  os << title;
  auto list = [&](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    os << "; " << names.size() << " " << what << ": ";
    for (size_t i = 0; i < names.size() && i < max_listed; ++i) os << (i ? ", " : "") << names[i];
    if (names.size() > max_listed) os << ", ...";
  };
  list("missing", missing);
  list("unexpected", unexpected);
  list(wrong_what, wrong_shape);
  return os.str();
}

void Module::load_state_dict(const StateDict& state) {
  check_state_matches(state, "load_state_dict");
  NoGradGuard no_grad;
  for (auto& [name, t] : named_parameters()) kernels::copy_into(*t, state.at(name));
}

void Module::assign_state_dict(const StateDict& state) {
  check_state_matches(state, "assign_state_dict");
  for (const auto& [name, t] : state)
    HYDRA_CHECK(t.defined() && !t.is_meta() && (t.dtype() == DType::Float32 || t.dtype() == DType::BFloat16) &&
                    t.is_contiguous(),
                "assign_state_dict: tensor '", name, "' must be a contiguous float32 or bfloat16 tensor with data, got ",
                t.defined() ? dtype_name(t.dtype()) : "an undefined tensor");
  for (auto& [name, p] : named_parameters()) {
    const bool requires_grad = p->requires_grad();
    *p = state.at(name).detach();
    // A bfloat16 weight is for inference: it never takes a gradient (set_requires_grad would refuse).
    if (p->dtype() == DType::Float32) p->set_requires_grad(requires_grad);
  }
}

int64_t convert_matrices_to_bfloat16(Module& root) {
  int64_t converted = 0;
  for (auto& [name, p] : root.named_parameters()) {
    if (p->dim() != 2 || p->dtype() != DType::Float32) continue;
    HYDRA_CHECK(!p->is_meta(), "convert_matrices_to_bfloat16: parameter '", name, "' has no memory (a meta model)");
    *p = to_bfloat16(*p);  // requires_grad off: bfloat16 weights are for inference only
    ++converted;
  }
  return converted;
}

int64_t Module::num_params() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters())
    HYDRA_CHECK(!__builtin_add_overflow(n, t->numel(), &n), "num_params: the count overflows int64");
  return n;
}

bool glob_match(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;  // no FNM_PATHNAME: '*' crosses dots
}

int64_t Module::set_trainable(const std::string& pattern, bool trainable) {
  int64_t matched = 0;
  for (auto& [name, t] : named_parameters()) {
    if (!glob_match(pattern, name)) continue;
    t->set_requires_grad(trainable);
    ++matched;
  }
  HYDRA_CHECK(matched > 0, "set_trainable: pattern '", pattern, "' matches no parameter (names look like '",
              named_parameters().empty() ? std::string("?") : named_parameters().front().first, "')");
  return matched;
}

std::shared_ptr<Storage> materialize_parameters(Module& root, bool zero_fill) {
  std::vector<Tensor*> params;
  for (auto& [name, t] : root.named_parameters()) params.push_back(t);
  return materialize_parameters(params, zero_fill);
}

std::shared_ptr<Storage> materialize_parameters(const std::vector<Tensor*>& params, bool zero_fill) {
  // 16 floats = 64 bytes: every parameter starts on a cache line.
  auto aligned = [](int64_t n) { return (n + 15) / 16 * 16; };
  int64_t total = 0;
  for (Tensor* t : params)
    HYDRA_CHECK(!__builtin_add_overflow(total, aligned(t->numel()), &total),
                "materialize_parameters: the parameter count overflows int64");
  Tensor slab = zero_fill ? zeros({total}, DType::Float32) : empty({total}, DType::Float32);
  int64_t offset = 0;
  for (Tensor* t : params) {
    const bool requires_grad = t->requires_grad();
    *t = make_view(slab, t->shape(), contiguous_strides(t->shape()), offset);
    t->set_requires_grad(requires_grad);
    // The padding after each parameter is zeroed either way: whole-slab passes never see garbage.
    const int64_t end = offset + t->numel(), next = offset + aligned(t->numel());
    if (!zero_fill && next > end) std::memset(slab.data<float>() + end, 0, sizeof(float) * (next - end));
    offset = next;
  }
  return slab.impl()->storage;
}

}  // namespace hydra::nn
