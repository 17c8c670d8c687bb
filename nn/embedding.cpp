// Embedding: the lookup (a row copy per token) and its backward (a scatter-add into the table) right
// below it; the contract is in embedding.h.
#include "nn/embedding.h"

#include "autograd/ops.h"
#include "autograd/record.h"
#include "tensor/bfloat16.h"
#include "tensor/dispatch.h"
#include "tensor/index.h"

namespace hydra::nn {

namespace {

// The ids as a flat int64 tensor, each checked to be in [0, vocab). This is the one range check a model's
// forward makes on its token ids: the row copy below only asserts it. Serial, so the error names the
// first bad id whatever the thread count, with its position in ids (a user needs the (row, position) of
// the token, not a flat offset).
Tensor checked_token_ids(const Tensor& ids, int64_t vocab) {
  HYDRA_CHECK(!is_floating(ids.dtype()), "embedding: ids ", shape_str(ids.shape()), " must be int32 or int64, got ",
              dtype_name(ids.dtype()));
  std::vector<int64_t> v;
  dispatch_index(ids.dtype(), "embedding", [&](auto) { v = ids.to_vector<int64_t>(); });
  for (size_t i = 0; i < v.size(); ++i)
    HYDRA_CHECK(v[i] >= 0 && v[i] < vocab, "embedding: token id ", v[i], " at position ",
                shape_str(unravel_index(static_cast<int64_t>(i), ids.shape())), " of ids ", shape_str(ids.shape()),
                " is out of range for a vocabulary of ", vocab, " (ids must be in [0, ", vocab, "))");
  return from_vector(v, {static_cast<int64_t>(v.size())});
}

// forward: out[i] = weight[ids[i]], so dweight[ids[i]] += dout[i] (a token seen twice gets both rows).
Tensor embedding_backward(const Shape& weight_shape, const Tensor& flat_ids, const Tensor& dout) {
  Tensor dweight = zeros(weight_shape, dout.dtype());
  kernels::index_add_into(dweight, 0, flat_ids, dout);
  return dweight;
}

}  // namespace

Tensor embedding(const Tensor& ids, const Tensor& weight) {
  HYDRA_CHECK(weight.dim() == 2, "embedding: weight ", shape_str(weight.shape()), " must be (V, C)");
  Tensor flat = checked_token_ids(ids, weight.size(0));     // shape: (B*T)
  Shape out_shape = ids.shape();
  out_shape.push_back(weight.size(1));
  if (weight.dtype() == DType::BFloat16) {
    // An inference table: the rows are widened to float32 (exactly) and no gradient is recorded.
    HYDRA_CHECK(weight.is_contiguous(), "embedding: the bfloat16 table ", shape_str(weight.shape()), " must be dense");
    return view(bfloat16_to_float32(kernels::index_select_raw(weight, 0, flat)), out_shape);  // shape: (B, T, C)
  }
  Tensor rows = kernels::index_select_raw(weight, 0, flat);  // shape: (B*T, C)
  rows = record("embedding", rows, {weight}, [shape = weight.shape(), flat](const Tensor& dout, const Needs&) {
    return Grads{embedding_backward(shape, flat, dout)};
  });
  return view(rows, out_shape);  // shape: (B, T, C)
}

Embedding::Embedding(int64_t num_embeddings_, int64_t dim_) : num_embeddings(num_embeddings_), dim(dim_) {
  HYDRA_CHECK(num_embeddings >= 1 && dim >= 1, "Embedding: num_embeddings = ", num_embeddings, " and dim = ", dim,
              " must both be >= 1");
  register_parameter("weight", weight, {num_embeddings, dim});
}

Tensor Embedding::forward(const Tensor& ids) const { return embedding(ids, weight); }

}  // namespace hydra::nn
