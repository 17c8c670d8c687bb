#include "train/optimizer.h"

#include <cmath>

#include "tensor/copy.h"
#include "tensor/error.h"

namespace hydra::train {

const char* optimizer_kind_name(OptimizerKind kind) { return kind == OptimizerKind::AdamW ? "adamw" : "sgd"; }

OptimizerKind parse_optimizer_kind(const std::string& name) {
  if (name == "adamw") return OptimizerKind::AdamW;
  if (name == "sgd") return OptimizerKind::SGD;
  throw Error("unknown optimizer '" + name + "' (expected adamw or sgd)");
}

void OptimizerOptions::validate() const {
  auto in_unit = [](double x) { return std::isfinite(x) && x >= 0 && x < 1; };
  HYDRA_CHECK(in_unit(beta1), "--beta1: expected a number in [0, 1), got ", beta1);
  HYDRA_CHECK(in_unit(beta2), "--beta2: expected a number in [0, 1), got ", beta2);
  HYDRA_CHECK(std::isfinite(eps) && eps > 0, "--eps: expected a number > 0, got ", eps);
  HYDRA_CHECK(in_unit(momentum), "--momentum: expected a number in [0, 1), got ", momentum);
  HYDRA_CHECK(std::isfinite(weight_decay) && weight_decay >= 0, "--weight-decay: expected a number >= 0, got ",
              weight_decay);
}

nlohmann::json OptimizerOptions::to_json() const {
  nlohmann::json j = {{"kind", optimizer_kind_name(kind)}, {"weight_decay", weight_decay}};
  if (kind == OptimizerKind::AdamW) {
    j["beta1"] = beta1;
    j["beta2"] = beta2;
    j["eps"] = eps;
  } else {
    j["momentum"] = momentum;
  }
  return j;
}

OptimizerOptions OptimizerOptions::from_json(const nlohmann::json& j) {
  OptimizerOptions o;
  o.kind = parse_optimizer_kind(j.at("kind").get<std::string>());
  o.weight_decay = j.at("weight_decay").get<double>();
  if (o.kind == OptimizerKind::AdamW) {
    o.beta1 = j.at("beta1").get<double>();
    o.beta2 = j.at("beta2").get<double>();
    o.eps = j.at("eps").get<double>();
  } else {
    o.momentum = j.at("momentum").get<double>();
  }
  o.validate();
  return o;
}

Optimizer::Optimizer(const OptimizerOptions& options, TrainableParameters& params)
    : options_(options), params_(params) {
  options_.validate();
  exp_avg_ = params_.new_slab();
  if (options_.kind == OptimizerKind::AdamW) exp_avg_sq_ = params_.new_slab();
}

namespace {

// The AdamW update of elements [begin, end) of one parameter (see the top of optimizer.h).
void adamw_update(float* p, const float* g, float* m, float* v, int64_t begin, int64_t end, float decay_factor,
                  float beta1, float one_minus_beta1, float beta2, float one_minus_beta2, float neg_step_size,
                  float bias_correction2_sqrt, float eps) {
  for (int64_t i = begin; i < end; ++i) {
    p[i] = p[i] * decay_factor;                                 // param.mul_(1 - lr * wd)
    m[i] = m[i] * beta1 + one_minus_beta1 * g[i];               // exp_avg.mul_(β1).add_(g, alpha=1 - β1)
    v[i] = v[i] * beta2 + one_minus_beta2 * g[i] * g[i];        // exp_avg_sq.mul_(β2).addcmul_(g, g, 1 - β2)
    const float denom = std::sqrt(v[i]) / bias_correction2_sqrt + eps;  // (√v / √bc2).add_(eps)
    p[i] = p[i] + (neg_step_size * m[i]) / denom;               // param.addcdiv_(m, denom, -step_size)
  }
}

// The SGD update of elements [begin, end) of one parameter; `first` on the optimizer's first step.
void sgd_update(float* p, const float* g, float* buf, int64_t begin, int64_t end, float weight_decay, float momentum,
                float lr, bool first) {
  for (int64_t i = begin; i < end; ++i) {
    float d = g[i] + weight_decay * p[i];              // d_p = grad.add(param, alpha=wd)
    if (momentum != 0.0f) {
      buf[i] = first ? d : buf[i] * momentum + d;      // buf = clone(d_p), then buf.mul_(m).add_(d_p)
      d = buf[i];
    }
    p[i] = p[i] - lr * d;                              // param.add_(d_p, alpha=-lr)
  }
}

}  // namespace

void Optimizer::step(double lr) {
  ++step_;
  const auto& list = params_.list();
  float* m_slab = exp_avg_.data<float>();
  if (options_.kind == OptimizerKind::AdamW) {
    float* v_slab = exp_avg_sq_.data<float>();
    const double t = static_cast<double>(step_);
    const double bias_correction1 = 1.0 - std::pow(options_.beta1, t);
    const double bias_correction2 = 1.0 - std::pow(options_.beta2, t);
    const float neg_step_size = static_cast<float>(-(lr / bias_correction1));
    const float bc2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
    const float decayed = static_cast<float>(1.0 - lr * options_.weight_decay);
    params_.for_each_chunk([&](const TrainableParameters::Chunk& c) {
      const TrainableParameter& tp = list[c.param];
      adamw_update(tp.param.data<float>(), tp.grad.data<float>(), m_slab + tp.slab_offset, v_slab + tp.slab_offset,
                   c.begin, c.end, tp.weight_decay ? decayed : 1.0f, static_cast<float>(options_.beta1),
                   static_cast<float>(1.0 - options_.beta1), static_cast<float>(options_.beta2),
                   static_cast<float>(1.0 - options_.beta2), neg_step_size, bc2_sqrt, static_cast<float>(options_.eps));
    });
  } else {
    const bool first = step_ == 1;
    params_.for_each_chunk([&](const TrainableParameters::Chunk& c) {
      const TrainableParameter& tp = list[c.param];
      sgd_update(tp.param.data<float>(), tp.grad.data<float>(), m_slab + tp.slab_offset, c.begin, c.end,
                 tp.weight_decay ? static_cast<float>(options_.weight_decay) : 0.0f,
                 static_cast<float>(options_.momentum), static_cast<float>(lr), first);
    });
  }
}

std::vector<Tensor> Optimizer::state_slabs() const {
  std::vector<Tensor> out;
  if (options_.kind == OptimizerKind::AdamW) {
    out = {exp_avg_, exp_avg_sq_};
  } else if (options_.momentum != 0) {
    out = {exp_avg_};
  }
  return out;
}

void Optimizer::save_state(TrainingState& state) const {
  state.optimizer = options_.to_json();
  state.optimizer["step"] = step_;
  const auto& list = params_.list();
  for (size_t i = 0; i < list.size(); ++i) {
    if (options_.kind == OptimizerKind::AdamW) {
      state.optimizer_tensors["exp_avg." + list[i].name] = params_.view_in(exp_avg_, i);
      state.optimizer_tensors["exp_avg_sq." + list[i].name] = params_.view_in(exp_avg_sq_, i);
    } else if (options_.momentum != 0) {
      state.optimizer_tensors["momentum_buffer." + list[i].name] = params_.view_in(exp_avg_, i);
    }
  }
}

void Optimizer::load_state(const TrainingState& state) {
  const OptimizerOptions saved = OptimizerOptions::from_json(state.optimizer);
  HYDRA_CHECK(saved.to_json() == options_.to_json(), "the checkpoint's optimizer ", saved.to_json().dump(),
              " differs from this run's ", options_.to_json().dump());
  step_ = state.optimizer.at("step").get<int64_t>();
  HYDRA_CHECK(step_ >= 0, "the checkpoint's optimizer step count is negative (", step_, ")");
  auto restore = [&](const std::string& prefix, const Tensor& slab) {
    const auto& list = params_.list();
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string name = prefix + list[i].name;
      auto it = state.optimizer_tensors.find(name);
      HYDRA_CHECK(it != state.optimizer_tensors.end(), "the checkpoint has no optimizer tensor '", name,
                  "' (was it saved with other parameters trainable?)");
      HYDRA_CHECK(it->second.shape() == list[i].param.shape() && it->second.dtype() == DType::Float32,
                  "optimizer tensor '", name, "' has shape ", shape_str(it->second.shape()), " ",
                  dtype_name(it->second.dtype()), ", expected ", shape_str(list[i].param.shape()), " float32");
      kernels::copy_into(params_.view_in(slab, i), it->second);
    }
  };
  size_t expected = 0;
  if (options_.kind == OptimizerKind::AdamW) {
    restore("exp_avg.", exp_avg_);
    restore("exp_avg_sq.", exp_avg_sq_);
    expected = 2 * params_.list().size();
  } else if (options_.momentum != 0) {
    restore("momentum_buffer.", exp_avg_);
    expected = params_.list().size();
  }
  HYDRA_CHECK(state.optimizer_tensors.size() == expected, "the checkpoint holds ", state.optimizer_tensors.size(),
              " optimizer tensors but this run trains ", params_.list().size(),
              " parameters (were other parameters trainable when it was saved?)");
}

}  // namespace hydra::train
