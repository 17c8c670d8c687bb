#include "autograd/record.h"

namespace hydra {

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!grad_mode_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(const char* op, Tensor out, const std::vector<Tensor>& inputs, BackwardFn backward) {
  if (!any_requires_grad(inputs)) return out;
  HYDRA_ASSERT(is_floating(out.dtype()), "op '", op, "' produced a ", dtype_name(out.dtype()),
               " output that requires grad");
  // An op may hand back one of its inputs unchanged (e.g. contiguous() of a dense tensor); give the
  // output its own impl so setting its grad_fn cannot rewrite the input's history.
  for (const Tensor& t : inputs)
    if (t.defined() && t.impl() == out.impl()) out = make_view(out, out.shape(), out.strides(), out.offset());

  auto node = std::make_shared<Node>();
  node->op = op;
  node->output_shape = out.shape();
  node->output_dtype = out.dtype();
  node->inputs.resize(inputs.size());
  node->needs.resize(inputs.size(), false);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& t = inputs[i];
    if (!t.defined() || !t.requires_grad()) continue;
    node->needs[i] = true;
    if (t.is_leaf())
      node->inputs[i].leaf = t.impl_ptr();
    else
      node->inputs[i].fn = t.grad_fn();
  }
  node->backward = std::move(backward);
  out.impl()->requires_grad = true;
  out.impl()->grad_fn = std::move(node);
  return out;
}

}  // namespace hydra
