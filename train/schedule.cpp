#include "train/schedule.h"

#include <cmath>
#include <numbers>

#include "tensor/error.h"

namespace hydra::train {

const char* schedule_kind_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::Constant: return "constant";
    case ScheduleKind::Cosine: return "cosine";
    case ScheduleKind::Linear: return "linear";
  }
  return "?";
}

ScheduleKind parse_schedule_kind(const std::string& name) {
  for (ScheduleKind k : {ScheduleKind::Constant, ScheduleKind::Cosine, ScheduleKind::Linear})
    if (name == schedule_kind_name(k)) return k;
  throw Error("unknown learning-rate schedule '" + name + "' (expected constant, cosine or linear)");
}

void LrSchedule::validate() const {
  HYDRA_CHECK(std::isfinite(peak_lr) && peak_lr > 0, "learning rate: expected a number > 0, got ", peak_lr);
  HYDRA_CHECK(total_steps >= 1, "schedule: total steps must be >= 1, got ", total_steps);
  HYDRA_CHECK(warmup_steps >= 0 && warmup_steps <= total_steps, "schedule: warm-up steps must be from 0 to the ",
              total_steps, " total steps, got ", warmup_steps);
  HYDRA_CHECK(std::isfinite(min_lr_ratio) && min_lr_ratio >= 0 && min_lr_ratio <= 1,
              "schedule: min-lr-ratio must be from 0 to 1, got ", min_lr_ratio);
}

double LrSchedule::lr_at(int64_t step) const {
  HYDRA_ASSERT(step >= 1, "lr_at: steps count from 1, got ", step);
  if (step <= warmup_steps) return peak_lr * static_cast<double>(step) / static_cast<double>(warmup_steps);
  if (kind == ScheduleKind::Constant) return peak_lr;
  const double min_lr = min_lr_ratio * peak_lr;
  const int64_t decay_steps = total_steps - warmup_steps;  // >= 1 here: step > warmup and step <= total
  if (decay_steps <= 0 || step >= total_steps) return min_lr;
  const double progress = static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps);
  if (kind == ScheduleKind::Cosine) return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  return peak_lr - (peak_lr - min_lr) * progress;
}

nlohmann::json LrSchedule::to_json() const {
  return {{"kind", schedule_kind_name(kind)}, {"peak_lr", peak_lr}, {"warmup_steps", warmup_steps},
          {"total_steps", total_steps}, {"min_lr_ratio", min_lr_ratio}};
}

LrSchedule LrSchedule::from_json(const nlohmann::json& j) {
  LrSchedule s;
  s.kind = parse_schedule_kind(j.at("kind").get<std::string>());
  s.peak_lr = j.at("peak_lr").get<double>();
  s.warmup_steps = j.at("warmup_steps").get<int64_t>();
  s.total_steps = j.at("total_steps").get<int64_t>();
  s.min_lr_ratio = j.at("min_lr_ratio").get<double>();
  s.validate();
  return s;
}

}  // namespace hydra::train
