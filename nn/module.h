// Module: a named tree of parameters, with OLMo-core's dotted names.
//
// A layer is a class deriving from Module that owns its parameters (Tensor members) and its children
// (Module members, or std::unique_ptr<Module> for lists such as blocks) and registers each once in its
// constructor:
//
//   class FeedForward : public Module {
//    public:
//     FeedForward(int64_t d_model, int64_t hidden) : w1(d_model, hidden), w2(hidden, d_model), w3(d_model, hidden) {
//       register_module("w1", w1);
//       register_module("w2", w2);
//       register_module("w3", w3);
//     }
//     Linear w1, w2, w3;
//   };
//
// Parameters start as meta tensors (shapes only). materialize_parameters() then gives the whole tree
// one slab of memory and points every parameter into it; a model built on the "meta" device simply
// skips that step, so it can be counted and inspected at any size.
//
// Parameters start trainable (requires_grad on), as in PyTorch: loss.backward() on a fresh model fills
// every parameter's grad. Freeze with set_trainable("trunk.*", false). Code that only needs values
// (inference, decoding with a KV cache, loading, exporting) runs under NoGradGuard (autograd/grad_mode.h)
// so that nothing records a graph; the KV-cached attention refuses to run otherwise.
//
// Modules are neither copyable nor movable: the registry holds pointers to members.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace hydra::nn {

// name -> tensor, sorted by name: the flat form of a model's weights (what a checkpoint stores).
using StateDict = std::map<std::string, Tensor>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter of this module and its children, depth-first in registration order, named
  // "child.grandchild.param" (e.g. "blocks.3.attention.w_q.weight"). The pointers stay valid for the
  // module's lifetime; writing through them rebinds the parameter (materialize_parameters does).
  std::vector<std::pair<std::string, Tensor*>> named_parameters();
  std::vector<std::pair<std::string, const Tensor*>> named_parameters() const;
  // This module (named "") and every descendant, depth-first in registration order, by dotted path
  // ("blocks.3.attention.w_q"): how code finds the layers of one kind (e.g. every Linear, for LoRA).
  std::vector<std::pair<std::string, Module*>> named_modules();

  // The parameters as a StateDict (sharing memory with the module: no copy).
  StateDict state_dict() const;
  // Copies values from `state` into the parameters. Strict: a missing name, an unexpected name or a
  // wrong shape is an error that lists them (all of them, not just the first).
  void load_state_dict(const StateDict& state);
  // Makes each parameter the tensor of its name in `state`, without copying (the module then shares that
  // memory: a memory-mapped weight file, say); the parameters may be meta before. As strict as
  // load_state_dict, and every tensor must be a defined, contiguous float32 or bfloat16 tensor with
  // data. Each float32 parameter keeps its requires_grad setting (bfloat16 ones take no gradient).
  void assign_state_dict(const StateDict& state);

  // Total number of parameter elements (works on meta modules).
  int64_t num_params() const;

  // Sets requires_grad on every parameter whose full name matches `pattern` (shell glob: `*` matches
  // any run of characters including dots, `?` one character; e.g. "trunk.*", "heads.1.*"). Returns how
  // many matched; matching none is an error (a typo must not silently freeze nothing). Every parameter
  // starts trainable.
  int64_t set_trainable(const std::string& pattern, bool trainable);

 protected:
  // Declares a parameter of this module: `param` becomes a meta tensor of `shape` until materialized.
  void register_parameter(const std::string& name, Tensor& param, const Shape& shape);
  // Declares a child module; its parameters appear under "name.".
  void register_module(const std::string& name, Module& child);
  // Removes a child declared with register_module (a LoRA adapter being merged away). Error if absent.
  void unregister_module(const std::string& name);

 private:
  // Error unless `state` names exactly this module's parameters with their shapes (`op` names the caller).
  void check_state_matches(const StateDict& state, const char* op);

  std::vector<std::pair<std::string, Tensor*>> params_;
  std::vector<std::pair<std::string, Module*>> children_;
};

// Allocates one float32 slab for every parameter of `root` and rebinds each parameter to its view of
// it, zero-filled unless `zero_fill` is false (then the values are unspecified, and pages nobody writes
// cost no memory). Returns the slab's storage (the parameters keep it alive too). Parameters are laid
// out in named_parameters() order, each 64-byte aligned.
std::shared_ptr<Storage> materialize_parameters(Module& root, bool zero_fill = true);
// The same for a chosen set of parameters (meta tensors of a module added after its model was
// materialized, such as LoRA adapters, which get a slab of their own), laid out in the order given.
std::shared_ptr<Storage> materialize_parameters(const std::vector<Tensor*>& params, bool zero_fill = true);

// "<title>; 2 missing: a, b; 1 unexpected: c; 1 <wrong_what>: d (...)": the message of a state that does
// not match a model (load_state_dict's, and a weight file's against a config), at most `max_listed`
// names per list; empty lists are left out.
std::string state_mismatch_message(const std::string& title, const std::vector<std::string>& missing,
                                   const std::vector<std::string>& unexpected,
                                   const std::vector<std::string>& wrong_shape, const char* wrong_what,
                                   size_t max_listed);

// Makes every float32 matrix (2-D parameter: linear weights, the embedding table, LoRA matrices) of
// `root` a new bfloat16 tensor (tensor/bfloat16.h: round to nearest even), for inference with half the
// weight bytes; vectors (the norms' weights) stay float32. The converted parameters take no gradient,
// so training on them is refused. Returns how many were converted.
int64_t convert_matrices_to_bfloat16(Module& root);

// Shell-style glob match used by set_trainable.
bool glob_match(const std::string& pattern, const std::string& name);

}  // namespace hydra::nn
