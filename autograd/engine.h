// Reverse-mode autograd: walking the graph backward.
//
// A tensor's autograd fields (tensor/tensor.h):
//   requires_grad  a leaf the user marked (a parameter), or the output of an op with such an input;
//   grad_fn        for op outputs, the Node that knows how to send the output's gradient to the inputs;
//   grad           for leaves only, the gradient accumulated by backward() (summed over every use).
//
// backward() walks the nodes in dependency order with an explicit work list (no recursion, so a graph
// thousands of ops deep cannot overflow the stack), sums the gradients arriving at each node, runs its
// rule once, releases the rule (and the tensors it saved) at once, and adds the results into the
// leaves' .grad. A node is run only after every node that feeds it a gradient, and inputs that need no
// gradient are never visited. The graph can be walked once: a second backward through the same nodes
// is an error (their saved tensors are gone).
//
// engine.cpp also defines Tensor's autograd methods (declared in tensor/tensor.h): set_requires_grad,
// grad, zero_grad, backward and detach.
#pragma once

#include <functional>

#include "tensor/tensor.h"

namespace hydra {

void run_backward(const Tensor& root, const Tensor& grad_output);

// Called after every addition into a leaf's .grad during backward (once per contribution), on the
// thread running backward. Data-parallel training uses it to start sending a layer's gradients as soon
// as they are complete, while backward goes on with the layers below (train/gradient_buckets.h). An
// empty function (the default) turns it off. Set per thread: it sees the backward runs of the thread
// that set it.
using LeafGradObserver = std::function<void(const TensorImpl& leaf)>;
void set_leaf_grad_observer(LeafGradObserver observer);

}  // namespace hydra
