// Every differentiable op, in one include.
#pragma once

#include "autograd/grad_mode.h"
#include "autograd/ops_dropout.h"
#include "autograd/ops_elementwise.h"
#include "autograd/ops_index.h"
#include "autograd/ops_join.h"
#include "autograd/ops_matmul.h"
#include "autograd/ops_reduce.h"
#include "autograd/ops_softmax.h"
#include "autograd/ops_view.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
