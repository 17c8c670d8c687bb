#include "nn/lm_head.h"

#include "autograd/ops.h"

namespace hydra::nn {

LMHead::LMHead(int64_t d_model_, int64_t vocab_size_, double eps)
    : d_model(d_model_), vocab_size(vocab_size_), norm(d_model_, eps), w_out(d_model_, vocab_size_) {
  register_module("norm", norm);
  register_module("w_out", w_out);
}

Tensor LMHead::forward(const Tensor& x, bool last_token_only) const {
  HYDRA_CHECK(x.dim() == 3 && x.size(2) == d_model, "LMHead: input ", shape_str(x.shape()),
              " must be (B, T, ", d_model, ")");
  Tensor h = x;
  if (last_token_only) {
    HYDRA_CHECK(x.size(1) >= 1, "LMHead: last_token_only needs at least one position, got input ",
                shape_str(x.shape()));
    h = narrow(x, 1, x.size(1) - 1, 1);  // shape: (B, 1, C), a view; its gradient lands on row T-1 only
  }
  return w_out.forward(norm.forward(h));  // shape: (B, T_out, V)
}

}  // namespace hydra::nn
