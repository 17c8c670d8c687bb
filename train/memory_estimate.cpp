// The memory estimates (the contract and what is counted are in memory_estimate.h; the formulas, in
// words, in docs/training.md 'Memory'). Widths are per token: C = d_model, Q = n_heads·head_dim,
// K = n_kv_heads·head_dim, F = hidden_size, V = vocab_size; n = B·T tokens.
#include "train/memory_estimate.h"

#include <algorithm>
#include <utility>

#include "hydra/lora.h"
#include "nn/linear_cross_entropy.h"
#include "nn/lora.h"
#include "tensor/allocator.h"

namespace hydra::train {

namespace {

// What the allocator takes for `count` values of `bytes_each` bytes (its size class).
double alloc(double count, double bytes_each = 4) {
  return static_cast<double>(allocation_bytes(static_cast<size_t>(count * bytes_each)));
}

struct Dims {
  double n;  // tokens in the micro-batch, B·T
  int64_t C, Q, K, F, V, H;
};

Dims dims_of(const nn::TransformerConfig& c, int64_t batch, int64_t seq) {
  HYDRA_CHECK(batch >= 1 && seq >= 1, "memory estimate: batch (", batch, ") and seq (", seq, ") must be >= 1");
  return {static_cast<double>(batch) * static_cast<double>(seq), c.d_model, c.n_heads * c.head_dim,
          c.n_kv_heads * c.head_dim, c.hidden_size, c.vocab_size, c.n_heads};
}

// A float32 activation of `width` values per token.
double act(const Dims& d, int64_t width) { return alloc(d.n * static_cast<double>(width)); }

// What one block holds at once beyond its input when no graph is recorded: the largest of the groups
// of tensors alive together as TransformerBlock::forward runs.
double block_working_set(const Dims& d) {
  const double lse = alloc(d.n * static_cast<double>(d.H), 8);
  return std::max({
      // causal_attention runs: the normed q and k, v, the rotated q and k, the output and its logsumexp
      3 * act(d, d.Q) + 3 * act(d, d.K) + lse,
      // w_out runs: the normed q and k, v, the attention output, and w_out's output
      2 * act(d, d.Q) + 2 * act(d, d.K) + act(d, d.C),
      // h = x + attention_norm(a): a, its norm, h
      3 * act(d, d.C),
      // the feed-forward: h, gate, up, swiglu's output and w2's output
      2 * act(d, d.C) + 3 * act(d, d.F),
      // out = h + feed_forward_norm(f): h, f, its norm, out
      4 * act(d, d.C),
  });
}

// The RoPE tables (cos and sin, float32) that each attention layer that has run keeps: at least
// 256 positions (nn/rope.cpp), head_dim wide. They stay after the first step.
double rope_tables(const nn::TransformerConfig& c, int64_t seq, int64_t layers) {
  const double positions = static_cast<double>(std::max<int64_t>(seq, 256));
  return static_cast<double>(layers) * 2 * alloc(positions * static_cast<double>(c.head_dim));
}

bool trains(const Tensor& p) { return p.requires_grad(); }

// y = linear(x), with its LoRA adapter if it has one: whether it joins the graph, and what the adapter
// keeps beyond x (x itself is counted by whoever made it; a recorded matmul always keeps its input).
struct LinearGraph {
  bool records = false;
  double saved = 0;
};

LinearGraph linear_graph(const nn::Linear& l, bool x_needs, const Dims& d) {
  LinearGraph g;
  g.records = x_needs || trains(l.weight);
  if (l.lora && (x_needs || trains(l.lora->lora_A.weight) || trains(l.lora->lora_B.weight))) {
    g.records = true;
    g.saved += act(d, l.lora->rank);  // A x, kept by B's matmul
    // dropout(x), a new tensor kept by A's matmul (the trainer turns dropout on for the step)
    if (l.lora->dropout > 0) g.saved += act(d, l.in_features);
  }
  return g;
}

// An RMSNorm that records keeps its input and one rstd per row.
double norm_saved(const Dims& d, int64_t width) { return act(d, width) + act(d, 1); }

// One block's graph, walked as TransformerBlock::forward runs: an op is recorded when an input or one
// of its parameters needs a gradient, and then keeps what its backward reads.
struct BlockGraph {
  double saved = 0;           // the block's own tensors kept for the backward (not its input)
  bool keeps_input = false;   // w_q, w_k or w_v recorded, so the block's input is kept
  bool output_needs = false;  // its output needs a gradient: what reads it records too
};

BlockGraph block_graph(const nn::TransformerBlock& b, bool x_needs, const Dims& d) {
  const nn::Attention& at = b.attention;
  const nn::FeedForward& ff = b.feed_forward;
  BlockGraph g;
  // q, k, v = w_q(x), w_k(x), w_v(x)
  const LinearGraph lq = linear_graph(at.w_q, x_needs, d), lk = linear_graph(at.w_k, x_needs, d),
                    lv = linear_graph(at.w_v, x_needs, d);
  g.keeps_input = lq.records || lk.records || lv.records;
  g.saved += lq.saved + lk.saved + lv.saved;
  bool q_needs = lq.records, k_needs = lk.records;
  if (at.qk_norm) {  // q_norm(q), k_norm(k) keep the projections
    if (q_needs || trains(at.q_norm.weight)) g.saved += norm_saved(d, d.Q), q_needs = true;
    if (k_needs || trains(at.k_norm.weight)) g.saved += norm_saved(d, d.K), k_needs = true;
  }
  // RoPE keeps nothing (its tables are shared); causal_attention keeps the rotated q and k, v, its
  // output o and a float64 logsumexp per row and attention head
  const bool o_needs = q_needs || k_needs || lv.records;
  if (o_needs) g.saved += 2 * act(d, d.Q) + 2 * act(d, d.K) + alloc(d.n * static_cast<double>(d.H), 8);
  // a = w_out(o) keeps o (already kept when causal_attention recorded)
  const LinearGraph lo = linear_graph(at.w_out, o_needs, d);
  g.saved += lo.saved + (lo.records && !o_needs ? act(d, d.Q) : 0);
  // h = x + attention_norm(a): the norm keeps a, add keeps nothing
  const bool an_needs = lo.records || trains(b.attention_norm.weight);
  if (an_needs) g.saved += norm_saved(d, d.C);
  const bool h_needs = x_needs || an_needs;
  // gate, up = w1(h), w3(h) keep h; s = swiglu(gate, up) keeps both; w2(s) keeps s
  const LinearGraph l1 = linear_graph(ff.w1, h_needs, d), l3 = linear_graph(ff.w3, h_needs, d);
  const bool s_needs = l1.records || l3.records;
  g.saved += l1.saved + l3.saved + (s_needs ? act(d, d.C) + 2 * act(d, d.F) : 0);
  const LinearGraph l2 = linear_graph(ff.w2, s_needs, d);
  g.saved += l2.saved + (l2.records ? act(d, d.F) : 0);
  // out = h + feed_forward_norm(f): the norm keeps f
  const bool fn_needs = l2.records || trains(b.feed_forward_norm.weight);
  if (fn_needs) g.saved += norm_saved(d, d.C);
  g.output_needs = h_needs || fn_needs;
  return g;
}

// A chain of blocks (the trunk's, or one head's): what its graph keeps, each block's own tensors and
// the inputs kept between blocks. The first block's input is counted by the caller.
struct ChainGraph {
  double saved = 0;
  bool keeps_input = false;  // the first block keeps the chain's input
  bool output_needs = false;
};

ChainGraph chain_graph(const std::vector<std::unique_ptr<nn::TransformerBlock>>& blocks, bool x_needs,
                       const Dims& d) {
  ChainGraph c;
  c.output_needs = x_needs;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const BlockGraph g = block_graph(*blocks[i], c.output_needs, d);
    c.saved += g.saved;
    if (i == 0) c.keeps_input = g.keeps_input;
    if (i > 0 && g.keeps_input) c.saved += act(d, d.C);  // the previous block's output
    c.output_needs = g.output_needs;
  }
  return c;
}

// NOTE: a trainable linear's weight gradient reaches the slab in two steps. matmul's backward forms
// d(Wᵀ) = xᵀ dy, (in, out), while the output's gradient dy is alive; once that node is done (dy freed),
// adding the transposed view into the (out, in) slab first makes a dense copy: twice the weight's bytes.
double weight_gradient(int64_t in, int64_t out) { return alloc(static_cast<double>(in) * static_cast<double>(out)); }

// A block's backward at its largest, beyond the graph it still keeps, in the feed-forward (the widest
// part): swiglu's backward holds its output's gradient and the two it makes while its own saved
// output is freed (2 F net); with trainable weights, w2's backward holds df, ds and d(W2ᵀ) (C + F +
// F·C), then d(W2ᵀ) and its dense copy (2 F·C).
double block_backward_extra(const Dims& d, bool weights_train) {
  const double dw = weight_gradient(d.F, d.C);
  if (!weights_train) return 2 * act(d, d.F);
  return std::max({2 * act(d, d.F), act(d, d.C) + act(d, d.F) + dw, 2 * dw});
}

}  // namespace

MemoryEstimate estimate_forward(const HydraTransformerConfig& config, int64_t batch, int64_t seq) {
  const Dims d = dims_of(config.base_config, batch, seq);
  const double N = static_cast<double>(config.n_heads);
  const double x = act(d, d.C), logits = act(d, d.V), work = block_working_set(d);
  // The ids and the embedding's checked copy of them (int64).
  const double ids = 2 * alloc(d.n, 8);
  // While head N-1 runs, the trunk's output and the earlier heads' outputs are kept (run_heads returns
  // the heads' outputs too), beside the (N, B, T, V) result that each head's logits are copied into.
  const double earlier = x + (N - 1) * x + N * logits;
  MemoryEstimate e;
  e.weights = static_cast<double>(config.slab_bytes());
  const int64_t layers = config.trunk_layers + config.n_heads * config.head_layers;
  e.activations = rope_tables(config.base_config, seq, layers) + ids + std::max({
                            x + work,                                                     // a trunk block
                            earlier + (config.head_layers > 1 ? x : 0) + work,            // a head block
                            earlier + x + x + logits,                                     // the lm_head
                        });
  return e;
}

MemoryEstimate estimate_evaluation(const HydraTransformerConfig& config, int64_t batch, int64_t seq) {
  MemoryEstimate e = estimate_forward(config, batch, seq);
  const Dims d = dims_of(config.base_config, batch, seq);
  const double N = static_cast<double>(config.n_heads), logits = act(d, d.V);
  const double after = std::max({
      // the mean over the heads, summed through a float64 partial of its size (malloc'd, outside the
      // allocator's count, but memory all the same)
      N * logits + logits + 2 * logits,
      // product_of_experts beside the mean: its running total, a head's scaled logits, their
      // log-softmax and its weighted copy
      N * logits + logits + 4 * logits,
  });
  const int64_t layers = config.trunk_layers + config.n_heads * config.head_layers;
  e.activations = std::max(e.activations, rope_tables(config.base_config, seq, layers) + 2 * alloc(d.n, 8) + after);
  return e;
}

MemoryEstimate estimate_training_step(const HydraTransformer& model, const TrainingShape& shape) {
  const HydraTransformerConfig& config = model.config();
  const Dims d = dims_of(config.base_config, shape.batch, shape.seq);
  HYDRA_CHECK(!shape.heads.empty(), "memory estimate: no head runs (give the trained heads)");
  for (int64_t k : shape.heads)
    HYDRA_CHECK(k >= 0 && k < config.n_heads, "memory estimate: head ", k, " is out of range for a model with ",
                config.n_heads, " heads");
  HYDRA_CHECK(shape.grad_accum >= 1 && shape.data_groups >= 1, "memory estimate: grad_accum (", shape.grad_accum,
              ") and data_groups (", shape.data_groups, ") must be >= 1");

  // The slabs: parameters (the adapters in a slab of their own), gradients of the trainable ones, moments.
  auto aligned = [](int64_t n) { return static_cast<double>((n + 15) / 16 * 16); };
  double base = 0, adapters = 0, trainable = 0;
  bool trunk_trains = false;
  for (const auto& [name, t] : model.named_parameters()) {
    (is_lora_parameter(name) ? adapters : base) += aligned(t->numel());
    if (!t->requires_grad()) continue;
    trainable += aligned(t->numel());
    trunk_trains = trunk_trains || name.starts_with("trunk.");
  }
  HYDRA_CHECK(trainable > 0, "memory estimate: nothing trains (every parameter of the model is frozen)");
  MemoryEstimate e;
  e.weights = 4 * (base + adapters);
  e.gradients = 4 * trainable;
  e.optimizer = (shape.optimizer == OptimizerKind::AdamW ? 2 : 1) * e.gradients;
  const int64_t computed = shape.computed_micro_batches > 0 ? shape.computed_micro_batches : shape.grad_accum;
  if (computed > 1 && !shape.judge) e.gradients *= 2;  // the stash

  // Every micro-batch of the step is read first: inputs and targets, int64. (The judge reads one at a
  // time, each with the answer head's hidden states, which it adds to the trunk's output.)
  const double batches = shape.judge ? 2 * alloc(d.n, 8) + 2 * act(d, d.C)
                                     : static_cast<double>(shape.grad_accum * shape.data_groups) * 2 * alloc(d.n, 8);
  const double x = act(d, d.C);
  const nn::LMHead& lm = model.lm_head;
  std::vector<double> peaks;

  // The trunk: without a graph when frozen (one block's working set at a time), else every block's
  // graph. Its output is kept while the heads run.
  double trunk_kept = x;
  if (!trunk_trains) {
    peaks.push_back(x + block_working_set(d));
  } else {
    const bool embedding_records = trains(model.trunk.embeddings.weight);
    const ChainGraph t = chain_graph(model.trunk.blocks, embedding_records, d);
    trunk_kept += t.saved + (t.keeps_input && !model.trunk.blocks.empty() ? x : 0) +
                  (embedding_records ? alloc(d.n, 8) : 0);  // the embedding keeps its flat ids
    // The trunk's backward after the heads': the heads' gradient for h, then one block's backward.
    bool blocks_train = false;
    for (const auto& b : model.trunk.blocks)
      for (const auto& [name, p] : std::as_const(*b).named_parameters()) blocks_train = blocks_train || trains(*p);
    peaks.push_back(trunk_kept + x + block_backward_extra(d, blocks_train));
    // The embedding's backward: a (V, C) gradient of zeros scattered into, then added to the slab.
    if (embedding_records) peaks.push_back(x + alloc(static_cast<double>(d.V) * d.C));
  }

  // Each head in turn: its graph, the lm_head's, the logits (B·T rows, or B for the judge).
  const double rows = shape.judge ? static_cast<double>(shape.batch) : d.n;
  auto lm_act = [&](int64_t width) { return alloc(rows * static_cast<double>(width)); };
  for (size_t i = 0; i < shape.heads.size(); ++i) {
    const Head& head = *model.heads[shape.heads[i]];
    const ChainGraph h = chain_graph(head.blocks, trunk_trains, d);
    // The gradient the earlier heads sent back to h (a leaf when the trunk trains).
    const double h_grad = trunk_trains && i > 0 ? x : 0;
    // lm_head: the norm keeps its input (the head's output) and rstd, w_out keeps the normed input, and
    // cross_entropy keeps the logits.
    const bool norm_records = h.output_needs || trains(lm.norm.weight);
    const LinearGraph w_out = linear_graph(lm.w_out, norm_records, d);
    const double logits = lm_act(d.V);
    double kept = trunk_kept + h_grad + h.saved;
    if (norm_records) kept += lm_act(d.C) + lm_act(1);
    bool head_trains = false;
    for (const auto& [name, p] : head.named_parameters()) head_trains = head_trains || trains(*p);
    if (!shape.judge && !lm.w_out.lora) {
      // The trainer's fused lm_head + loss (hydra/loss.h, nn/linear_cross_entropy.h): the normed input,
      // one block of logits, and the gradients its forward forms (dx when the norm records, dW when w_out
      // trains); the backward hands those on without copies. The logits never exist whole.
      const double rows_per_block =
          std::min(rows, static_cast<double>(nn::linear_cross_entropy_block_rows(d.V, 4)));
      const double dx = norm_records ? lm_act(d.C) : 0;
      const double dw = trains(lm.w_out.weight) ? alloc(static_cast<double>(d.V) * d.C) : 0;
      peaks.push_back(kept + lm_act(d.C) + alloc(rows_per_block * static_cast<double>(d.V)) + dx + dw);
      if (!w_out.records) continue;  // nothing along this head trains: no backward
      // The norm's backward beside dx and dW, then the head's last block's backward.
      peaks.push_back(kept + dx + dw + lm_act(d.C));
      peaks.push_back(kept + block_backward_extra(d, head_trains));
      continue;
    }
    if (w_out.records) kept += lm_act(d.C) + w_out.saved;
    if (!w_out.records) {  // nothing along this head trains: a forward without a graph
      peaks.push_back(kept + logits + x + block_working_set(d));
      continue;
    }
    // The lm_head's backward: the logits' gradient beside the logits, then w_out's backward makes dx
    // (when the normed input needs it) and, when w_out trains, its (V, C) weight gradient.
    const double dx = norm_records ? lm_act(d.C) : 0;
    const double dw = trains(lm.w_out.weight) ? weight_gradient(d.C, d.V) : 0;
    peaks.push_back(kept + logits + dx + std::max(logits + dw, 2 * dw));
    // The head's last block's backward: the step still holds the logits.
    // (The judge picks each row's last position with index_select, whose backward scatters into zeros
    // of the head's whole output.)
    peaks.push_back(kept + logits + (shape.judge ? x : 0) + block_backward_extra(d, head_trains));
  }
  const int64_t layers = config.trunk_layers + static_cast<int64_t>(shape.heads.size()) * config.head_layers;
  e.activations = rope_tables(config.base_config, shape.seq, layers) + batches +
                  *std::max_element(peaks.begin(), peaks.end());
  return e;
}

}  // namespace hydra::train
