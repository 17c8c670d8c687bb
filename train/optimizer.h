// Optimizers with exactly PyTorch's semantics, as one fused pass over the parameter chunks.
//
// AdamW (torch.optim.AdamW, amsgrad off), for step t counted from 1:
//   p  = p · (1 − lr·wd)                      decoupled weight decay, before the Adam update
//   m  = β1·m + (1 − β1)·g
//   v  = β2·v + (1 − β2)·g²
//   p  = p − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + eps)     eps outside the square root
// SGD (torch.optim.SGD, dampening 0, no Nesterov):
//   d  = g + wd·p                              (coupled L2 decay)
//   b  = d on the first step, else momentum·b + d
//   p  = p − lr·b                              (b = d when momentum is 0)
// wd applies only to the parameters TrainableParameter::weight_decay marks (2-D weight matrices).
// NOTE: the scalar factors are computed in double as PyTorch computes them, then each element is
// updated in float32 in PyTorch's order of operations.
//
// The moments live in slabs with the gradient slab's layout (train/trainable.h). They are saved in a
// checkpoint's TrainingState as "exp_avg.<name>", "exp_avg_sq.<name>" (AdamW) or
// "momentum_buffer.<name>" (SGD), and the step count and hyper-parameters in its optimizer JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/checkpoint.h"
#include "train/trainable.h"

namespace hydra::train {

enum class OptimizerKind { AdamW, SGD };
const char* optimizer_kind_name(OptimizerKind kind);          // "adamw", "sgd"
OptimizerKind parse_optimizer_kind(const std::string& name);  // error listing the choices

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::AdamW;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;  // AdamW
  double momentum = 0.9;                           // SGD
  double weight_decay = 0.1;

  void validate() const;  // error naming the option: betas in [0, 1), eps > 0, wd >= 0, momentum in [0, 1)
  nlohmann::json to_json() const;
  static OptimizerOptions from_json(const nlohmann::json& j);
};

class Optimizer {
 public:
  Optimizer(const OptimizerOptions& options, TrainableParameters& params);

  // One update of every trainable parameter from its gradient at learning rate lr.
  void step(double lr);
  int64_t steps_taken() const { return step_; }
  const OptimizerOptions& options() const { return options_; }

  // Moments and step count into / out of a checkpoint's training state. load_state checks the kind,
  // the hyper-parameters, and every tensor's presence and shape, naming what differs.
  void save_state(TrainingState& state) const;
  void load_state(const TrainingState& state);
  // The moment slabs (layout of TrainableParameters::new_slab): AdamW's two, SGD's momentum buffers, or
  // none (SGD without momentum).
  std::vector<Tensor> state_slabs() const;

 private:
  OptimizerOptions options_;
  TrainableParameters& params_;
  Tensor exp_avg_, exp_avg_sq_;  // AdamW moments, or (SGD) exp_avg_ holds the momentum buffers
  int64_t step_ = 0;
};

}  // namespace hydra::train
