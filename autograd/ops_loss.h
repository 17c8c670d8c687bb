// The cross-entropy loss lives in nn/cross_entropy.h (a fused layer with its reference, like RMSNorm):
// hydra::cross_entropy and hydra::kIgnoreIndex. This header only keeps the old include working.
#pragma once

#include "nn/cross_entropy.h"
