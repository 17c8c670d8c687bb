// Whether ops record the graph. Off inside backward, inside optimizer steps and for pure inference.
#pragma once

namespace hydra {

// True unless a NoGradGuard is alive on this thread.
bool grad_mode_enabled();

// While alive, ops on this thread record nothing (no grad_fn, outputs do not require grad). Nests.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace hydra
