#include "autograd/engine.h"

#include <unordered_map>
#include <vector>

#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "tensor/copy.h"
#include "tensor/elementwise.h"

namespace hydra {

namespace {

// Per thread: a backward run on another thread never calls it (under MPI only the main thread may).
thread_local LeafGradObserver g_leaf_grad_observer;

void check_grad(const char* where, const Tensor& g, const Shape& shape, DType dtype) {
  HYDRA_ASSERT(g.shape() == shape, where, ": gradient of shape ", shape_str(g.shape()),
               " for a tensor of shape ", shape_str(shape));
  HYDRA_ASSERT(g.dtype() == dtype, where, ": gradient of dtype ", dtype_name(g.dtype()),
               " for a tensor of dtype ", dtype_name(dtype));
}

// leaf.grad += g. The first gradient is copied so .grad never aliases a tensor of the graph.
void accumulate_into_leaf(TensorImpl& leaf, const Tensor& g) {
  check_grad("accumulating into a leaf", g, leaf.shape, leaf.dtype);
  if (!leaf.grad) {
    leaf.grad = kernels::clone_raw(g).impl_ptr();
  } else {
    kernels::add_into(Tensor(leaf.grad), g);
  }
  if (g_leaf_grad_observer) g_leaf_grad_observer(leaf);
}

}  // namespace

void set_leaf_grad_observer(LeafGradObserver observer) { g_leaf_grad_observer = std::move(observer); }

void run_backward(const Tensor& root, const Tensor& grad_output) {
  HYDRA_CHECK(root.requires_grad(), "backward: the tensor does not require grad (no input of the "
              "computation has requires_grad set, or it ran under NoGradGuard)");
  HYDRA_CHECK(grad_output.shape() == root.shape(), "backward: gradient shape ", shape_str(grad_output.shape()),
              " differs from tensor shape ", shape_str(root.shape()));
  HYDRA_CHECK(grad_output.dtype() == root.dtype(), "backward: gradient dtype ", dtype_name(grad_output.dtype()),
              " differs from tensor dtype ", dtype_name(root.dtype()));
  NoGradGuard no_grad;  // the backward rules' own ops are not recorded

  if (root.is_leaf()) {
    accumulate_into_leaf(*root.impl(), grad_output);
    return;
  }

  // Pass 1: find every node reachable from the root and count the edges that lead into each, so a node
  // runs only once all of its output's gradient has arrived.
  std::unordered_map<Node*, int> pending_edges;
  std::vector<Node*> stack{root.grad_fn().get()};
  pending_edges[root.grad_fn().get()] = 0;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const auto& e : n->inputs) {
      if (!e.fn) continue;
      auto [it, inserted] = pending_edges.try_emplace(e.fn.get(), 0);
      ++it->second;
      if (inserted) stack.push_back(e.fn.get());
    }
  }

  // Pass 2: run nodes whose gradients are complete. `grads` holds the gradient summed so far per node.
  std::unordered_map<Node*, Tensor> grads;
  grads[root.grad_fn().get()] = grad_output;
  // Keep each node alive while it runs even if the graph drops its last reference meanwhile.
  std::vector<std::shared_ptr<Node>> ready{root.grad_fn()};
  while (!ready.empty()) {
    std::shared_ptr<Node> node = std::move(ready.back());
    ready.pop_back();
    Tensor g = std::move(grads[node.get()]);
    grads.erase(node.get());
    HYDRA_CHECK(node->backward, "backward: trying to go through the graph of '", node->op,
                "' a second time; its saved tensors were freed after the first backward");
    check_grad(node->op, g, node->output_shape, node->output_dtype);

    Grads in_grads = node->backward(g, node->needs);
    node->backward = nullptr;  // frees the saved tensors now, not at the end of the walk
    HYDRA_ASSERT(in_grads.size() == node->inputs.size(), "backward of '", node->op, "' returned ",
                 in_grads.size(), " gradients for ", node->inputs.size(), " inputs");

    for (size_t i = 0; i < node->inputs.size(); ++i) {
      const auto& e = node->inputs[i];
      if (!node->needs[i]) continue;
      const Tensor& gi = in_grads[i];
      HYDRA_ASSERT(gi.defined(), "backward of '", node->op, "' gave no gradient for input ", i);
      if (e.leaf) {
        accumulate_into_leaf(*e.leaf, gi);
        continue;
      }
      Node* next = e.fn.get();
      Tensor& slot = grads[next];
      // Out of place: gi may alias a gradient sent elsewhere (add sends dout to both inputs).
      slot = slot.defined() ? kernels::add_raw(slot, gi) : gi;
      if (--pending_edges[next] == 0) ready.push_back(e.fn);
    }
  }
}

Tensor& Tensor::set_requires_grad(bool on) {
  HYDRA_CHECK(defined(), "set_requires_grad on an undefined tensor");
  HYDRA_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can be changed; this one was computed by '",
              grad_fn()->op, "' (use detach() first)");
  HYDRA_CHECK(!on || is_floating(dtype()), "set_requires_grad: only float tensors can require grad, got ",
              dtype_name(dtype()));
  impl_->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return checked().grad ? Tensor(impl_->grad) : Tensor(); }

void Tensor::zero_grad() const { impl_->grad.reset(); }

void Tensor::backward() const {
  HYDRA_CHECK(numel() == 1, "backward() without a gradient needs a one-element tensor, got shape ",
              shape_str(shape()), "; pass the upstream gradient");
  run_backward(*this, ones(shape(), dtype()));
}

void Tensor::backward(const Tensor& grad_output) const { run_backward(*this, grad_output); }

Tensor Tensor::detach() const {
  return make_view(*this, shape(), strides(), offset());
}

}  // namespace hydra
