#include "autograd/grad_mode.h"

namespace hydra {

namespace {
thread_local bool t_grad_enabled = true;
}

bool grad_mode_enabled() { return t_grad_enabled; }

NoGradGuard::NoGradGuard() : previous_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = previous_; }

}  // namespace hydra
