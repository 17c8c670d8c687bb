// matmul with its backward. The gradient products read transposed views of the saved operands, which
// GEMM takes as transpose flags: no transpose is ever materialised.
#include "autograd/ops_matmul.h"

#include "autograd/ops_view.h"
#include "autograd/record.h"
#include "tensor/matmul.h"

namespace hydra {

Tensor matmul(const Tensor& a, const Tensor& b) {
  Tensor out = kernels::matmul_raw(a, b);
  return record("matmul", out, {a, b}, [a = a.detach(), b = b.detach()](const Tensor& dout, const Needs& needs) {
    Grads g(2);
    // forward: out = a @ b, so da = dout @ bᵀ  (M×N · N×K)
    if (needs[0]) g[0] = matmul(dout, transpose(b, -1, -2));
    //                       and db = aᵀ @ dout  (K×M · M×N)
    if (needs[1]) g[1] = matmul(transpose(a, -1, -2), dout);
    return g;
  });
}

}  // namespace hydra
