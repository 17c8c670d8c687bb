#include "nn/transformer_config.h"

#include <sstream>

#include "tensor/error.h"

namespace hydra::nn {

void TransformerConfig::validate() const {
  auto positive = [](const char* field, int64_t v) {
    HYDRA_CHECK(v >= 1, "TransformerConfig.", field, " = ", v, ": must be >= 1");
  };
  positive("vocab_size", vocab_size);
  positive("d_model", d_model);
  positive("n_layers", n_layers);
  positive("n_heads", n_heads);
  positive("n_kv_heads", n_kv_heads);
  positive("head_dim", head_dim);
  positive("hidden_size", hidden_size);
  HYDRA_CHECK(n_heads % n_kv_heads == 0, "TransformerConfig.n_kv_heads = ", n_kv_heads,
              ": must divide n_heads = ", n_heads, " (each kv head serves n_heads / n_kv_heads query heads)");
  HYDRA_CHECK(head_dim % 2 == 0, "TransformerConfig.head_dim = ", head_dim, ": must be even (RoPE rotates pairs)");
  HYDRA_CHECK(rope_theta > 0, "TransformerConfig.rope_theta = ", rope_theta, ": must be > 0");
  HYDRA_CHECK(norm_eps > 0, "TransformerConfig.norm_eps = ", norm_eps, ": must be > 0");
  HYDRA_CHECK(init_std > 0, "TransformerConfig.init_std = ", init_std, ": must be > 0");
}

std::string TransformerConfig::summary() const {
  std::ostringstream os;
  os << "vocab " << vocab_size << ", d_model " << d_model << ", " << n_layers << " layers, " << n_heads << " heads ("
     << n_kv_heads << " kv) x " << head_dim << ", ffn " << hidden_size << ", rope " << rope_theta << ", eps "
     << norm_eps << (qk_norm ? ", qk-norm" : "");
  return os.str();
}

}  // namespace hydra::nn
