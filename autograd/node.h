// A node of the autograd graph: one recorded op, with the rule that maps the gradient of its output to
// the gradients of its inputs.
//
// Ops build nodes through record() (autograd/record.h); only the engine (autograd/engine.cpp) reads them.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "tensor/tensor.h"

namespace hydra {

// needs[i] says whether input i wants a gradient; a backward rule leaves grads[i] undefined when it
// does not, and may skip the work for it.
using Needs = std::vector<bool>;
using Grads = std::vector<Tensor>;
using BackwardFn = std::function<Grads(const Tensor& grad_output, const Needs& needs)>;

struct Node {
  // Where the gradient of input i goes: the node that produced it, or the leaf tensor that stores it.
  // Both are empty for an input that needs no gradient (that branch is never visited).
  struct Edge {
    std::shared_ptr<Node> fn;
    std::shared_ptr<TensorImpl> leaf;
  };

  const char* op = "";          // the op's name, for error messages
  std::vector<Edge> inputs;
  Needs needs;
  BackwardFn backward;          // released by the engine once run, which frees the saved tensors
  Shape output_shape;           // the gradient arriving here must have this shape and dtype
  DType output_dtype = DType::Float32;
};

}  // namespace hydra
