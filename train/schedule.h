// The learning-rate schedule: linear warm-up, then constant, cosine or linear decay.
//
// Optimizer step s is counted from 1 over S steps (total_steps) with W warm-up steps:
//   s <= W:      lr = peak · s / W
//   constant:    lr = peak
//   cosine:      lr = min + (peak − min) · ½ (1 + cos(π (s − W) / (S − W)))
//   linear:      lr = peak − (peak − min) · (s − W) / (S − W)
// with min = min_lr_ratio · peak. At s = S both decays reach min exactly; after S (a run extended past
// its schedule) they stay at min.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace hydra::train {

enum class ScheduleKind { Constant, Cosine, Linear };
const char* schedule_kind_name(ScheduleKind kind);     // "constant", "cosine", "linear"
ScheduleKind parse_schedule_kind(const std::string& name);  // error listing the choices

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::Cosine;
  double peak_lr = 3e-4;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double min_lr_ratio = 0.1;

  // Error naming the field: peak_lr > 0, 0 <= warmup <= total, total >= 1, 0 <= min_lr_ratio <= 1.
  void validate() const;
  // The learning rate of optimizer step `step` (>= 1).
  double lr_at(int64_t step) const;

  nlohmann::json to_json() const;
  static LrSchedule from_json(const nlohmann::json& j);
};

}  // namespace hydra::train
