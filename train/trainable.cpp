#include "train/trainable.h"

#include <cmath>
#include <cstring>

#include "tensor/error.h"

namespace hydra::train {

namespace {
// 16 floats = 64 bytes: every gradient starts on a cache line, as the parameters do.
int64_t aligned(int64_t n) { return (n + 15) / 16 * 16; }
}  // namespace

int64_t head_of_parameter(const std::string& name) {
  if (!name.starts_with("heads.")) return -1;
  const size_t end = name.find('.', 6);
  HYDRA_CHECK(end != std::string::npos && end > 6 && name.find_first_not_of("0123456789", 6) == end,
              "parameter '", name, "' is not named heads.<k>.<...>");
  return std::stoll(name.substr(6, end - 6));
}

bool decays(const std::string& name, const Tensor& param) {
  return param.dim() == 2 && !name.ends_with("embeddings.weight");
}

TrainableParameters::TrainableParameters(nn::Module& model) {
  for (auto& [name, t] : model.named_parameters()) {
    if (!t->requires_grad()) continue;
    HYDRA_CHECK(!t->is_meta(), "trainable parameter '", name, "' has no memory (a meta model cannot train)");
    HYDRA_CHECK(t->dtype() == DType::Float32 && t->is_contiguous(), "trainable parameter '", name,
                "' must be a dense float32 tensor");
    params_.push_back({name, *t, Tensor(), slab_numel_, decays(name, *t)});
    numel_ += t->numel();
    slab_numel_ += aligned(t->numel());
  }
  HYDRA_CHECK(!params_.empty(), "nothing to train: every parameter of the model is frozen");
  grad_slab_ = new_slab();
  for (size_t i = 0; i < params_.size(); ++i) {
    params_[i].grad = view_in(grad_slab_, i);
    const int64_t n = params_[i].param.numel();
    for (int64_t b = 0; b < n; b += kChunk) chunks_.push_back({static_cast<int32_t>(i), b, std::min(n, b + kChunk)});
  }
  active_chunks_ = chunks_;
  zero_grad();
}

Tensor TrainableParameters::new_slab() const {
  Tensor slab = empty({slab_numel_}, DType::Float32);
  float* p = slab.data<float>();
  parallel_for(0, slab_numel_, int64_t{1} << 18, [&](int64_t lo, int64_t hi) {
    std::memset(p + lo, 0, static_cast<size_t>(hi - lo) * sizeof(float));
  });
  return slab;
}

Tensor TrainableParameters::view_in(const Tensor& slab, size_t i) const {
  const TrainableParameter& p = params_.at(i);
  return make_view(slab, p.param.shape(), contiguous_strides(p.param.shape()), p.slab_offset);
}

void TrainableParameters::zero_grad() {
  float* g = grad_slab_.data<float>();
  parallel_for(0, slab_numel_, int64_t{1} << 18, [&](int64_t lo, int64_t hi) {
    std::memset(g + lo, 0, static_cast<size_t>(hi - lo) * sizeof(float));
  });
  for (TrainableParameter& p : params_) p.param.impl()->grad = p.grad.impl_ptr();
  if (stash_.defined()) {
    float* st = stash_.data<float>();
    parallel_for(0, slab_numel_, int64_t{1} << 18, [&](int64_t lo, int64_t hi) {
      std::memset(st + lo, 0, static_cast<size_t>(hi - lo) * sizeof(float));
    });
  }
}

std::pair<int64_t, int64_t> TrainableParameters::slab_range(size_t i) const {
  const TrainableParameter& p = params_.at(i);
  return {p.slab_offset, p.slab_offset + aligned(p.param.numel())};
}

void TrainableParameters::stash_grad() {
  if (!stash_.defined()) stash_ = new_slab();  // allocated on first use: only gradient accumulation needs it
  float* g = grad_slab_.data<float>();
  float* st = stash_.data<float>();
  parallel_for(0, slab_numel_, int64_t{1} << 16, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      st[i] += g[i];
      g[i] = 0.0f;
    }
  });
}

void TrainableParameters::restore_stash() {
  HYDRA_CHECK(stash_.defined(), "restore_stash: nothing was stashed");
  const float* st = stash_.data<float>();
  float* g = grad_slab_.data<float>();
  parallel_for(0, slab_numel_, int64_t{1} << 18, [&](int64_t lo, int64_t hi) {
    std::memcpy(g + lo, st + lo, static_cast<size_t>(hi - lo) * sizeof(float));
  });
}

void TrainableParameters::fold_stash(int64_t begin, int64_t end) {
  HYDRA_CHECK(stash_.defined(), "fold_stash: nothing was stashed");
  HYDRA_CHECK(0 <= begin && begin <= end && end <= slab_numel_, "fold_stash: range [", begin, ", ", end,
              ") is outside the slab of ", slab_numel_, " elements");
  const float* st = stash_.data<float>();
  float* g = grad_slab_.data<float>();
  parallel_for(begin, end, int64_t{1} << 16, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) g[i] = st[i] + g[i];
  });
}

void TrainableParameters::set_active(const std::vector<bool>& active) {
  HYDRA_CHECK(active.size() == params_.size(), "set_active: ", active.size(), " flags for ", params_.size(),
              " parameters");
  active_chunks_.clear();
  for (const Chunk& c : chunks_)
    if (active[static_cast<size_t>(c.param)]) active_chunks_.push_back(c);
}

double TrainableParameters::grad_norm() const { return norm_of(chunk_square_sums()); }

double TrainableParameters::norm_of(const std::vector<double>& partial) {
  double total = 0;
  for (double s : partial) total += s;
  return std::sqrt(total);
}

std::vector<double> TrainableParameters::chunk_square_sums() const {
  // NOTE: one double partial sum per chunk, added in chunk order: the same bits for any thread count.
  std::vector<double> partial(chunks_.size());
  parallel_for(0, static_cast<int64_t>(chunks_.size()), 1, [&](int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; ++c) {
      const Chunk& ch = chunks_[c];
      const float* g = params_[ch.param].grad.data<float>();
      double s = 0;
      for (int64_t i = ch.begin; i < ch.end; ++i) s += static_cast<double>(g[i]) * g[i];
      partial[c] = s;
    }
  });
  return partial;
}

void TrainableParameters::scale_grad(float c) {
  for_each_chunk([&](const Chunk& ch) {
    float* g = params_[ch.param].grad.data<float>();
    for (int64_t i = ch.begin; i < ch.end; ++i) g[i] *= c;
  });
}

std::string TrainableParameters::first_non_finite_grad() const {
  for (const TrainableParameter& p : params_) {
    const float* g = p.grad.data<float>();
    for (int64_t i = 0, n = p.grad.numel(); i < n; ++i)
      if (!std::isfinite(g[i])) return p.name;
  }
  return "";
}

}  // namespace hydra::train
