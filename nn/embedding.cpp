#include "nn/embedding.h"

#include "autograd/ops.h"
#include "tensor/dispatch.h"

namespace hydra::nn {

namespace {

// Every id in [0, V), else an error that points at the first bad one. index_select checks too, but
// only knows a flat position and calls itself index_select; a user needs the (b, t) of the token.
void check_ids(const Tensor& ids, int64_t vocab) {
  dispatch_index(ids.dtype(), "embedding", [&](auto tag) {
    using I = decltype(tag);
    const std::vector<I> v = ids.to_vector<I>();
    for (size_t i = 0; i < v.size(); ++i)
      HYDRA_CHECK(v[i] >= 0 && v[i] < vocab, "embedding: token id ", static_cast<int64_t>(v[i]), " at position ",
                  shape_str(unravel_index(static_cast<int64_t>(i), ids.shape())), " of ids ", shape_str(ids.shape()),
                  " is out of range for a vocabulary of ", vocab, " (ids must be in [0, ", vocab, "))");
  });
}

}  // namespace

Tensor embedding(const Tensor& ids, const Tensor& weight) {
  HYDRA_CHECK(weight.dim() == 2, "embedding: weight ", shape_str(weight.shape()), " must be (V, C)");
  HYDRA_CHECK(!is_floating(ids.dtype()), "embedding: ids ", shape_str(ids.shape()),
              " must be int32 or int64, got ", dtype_name(ids.dtype()));
  check_ids(ids, weight.size(0));
  Tensor flat = reshape(ids, {ids.numel()});       // shape: (B*T)
  Tensor rows = index_select(weight, 0, flat);     // shape: (B*T, C)
  Shape out_shape = ids.shape();
  out_shape.push_back(weight.size(1));
  return view(rows, out_shape);                    // shape: (B, T, C)
}

Embedding::Embedding(int64_t num_embeddings_, int64_t dim_) : num_embeddings(num_embeddings_), dim(dim_) {
  HYDRA_CHECK(num_embeddings >= 1 && dim >= 1, "Embedding: num_embeddings = ", num_embeddings, " and dim = ", dim,
              " must both be >= 1");
  register_parameter("weight", weight, {num_embeddings, dim});
}

Tensor Embedding::forward(const Tensor& ids) const { return embedding(ids, weight); }

}  // namespace hydra::nn
