#pragma once
/// @file optimizer.hpp
/// Optimizer<Rule, T>: the C++ face of every optimizer. It keeps the state (cache-line aligned,
/// allocated lazily on a tensor's first step) for parameter buffers owned by the caller.
///
/// @code
///   std::vector<float> w(1000), b(10), gw(1000), gb(10);
///   dlopt::Adam<float> opt({{w.data(), 1000}, {b.data(), 10}}, {.lr = 1e-3});   // C++20 designators
///   opt.step({gw.data(), gb.data()});   // nullptr skips a parameter this step
/// @endcode

#include <string>
#include <vector>

#include "dlopt/core/aligned.hpp"
#include "dlopt/core/step.hpp"
#include "dlopt/optim/registry.hpp"

namespace dlopt {

/// A parameter buffer owned by the caller.
template <class T>
struct ParamView {
  T* data;
  int64_t size;
};

namespace detail {
/// The tensor list of one step: a TensorStep for every parameter that has a gradient, its state
/// buffers from slot(i, k) (which allocates them on first use). Checks the gradient count and the
/// config first, so a bad call allocates nothing. Shared by the host and the device optimizers.
template <class Rule, class T, class Slot>
void collect_steps(const std::vector<ParamView<T>>& params, const std::vector<const T*>& grads,
                   const typename Rule::Config& config, std::vector<TensorScalars>& scalars, Slot&& slot,
                   std::vector<TensorStep<Rule, T>>& out) {
  if (grads.size() != params.size())
    throw InvalidArgument("grads: expected " + std::to_string(params.size()) + " gradients, got " +
                          std::to_string(grads.size()));
  config.validate();
  out.clear();  // reused: no allocation per step
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!grads[i]) continue;
    TensorStep<Rule, T> t;
    t.param = params[i].data;
    t.grad = grads[i];
    t.size = params[i].size;
    t.config = &config;
    t.scalars = &scalars[i];
    for (std::size_t k = 0; k < num_slots<Rule>; ++k) t.slots[k] = slot(i, k);
    out.push_back(t);
  }
}
}  // namespace detail

template <class Rule, class T = float>
class Optimizer {
 public:
  using Config = typename Rule::Config;

  explicit Optimizer(std::vector<ParamView<T>> params, Config config = {})
      : params_(std::move(params)), config_(config), scalars_(params_.size()),
        state_(params_.size()) {
    config_.validate();
    for (std::size_t i = 0; i < params_.size(); ++i)
      if (params_[i].size < 0 || (params_[i].size > 0 && !params_[i].data))
        throw InvalidArgument("params[" + std::to_string(i) + "]: null or negative-size buffer");
  }

  /// One step: grads[i] has params[i].size elements, or is nullptr to leave params[i] alone.
  void step(const std::vector<const T*>& grads) {
    detail::collect_steps(params_, grads, config_, scalars_,
                          [this](std::size_t i, std::size_t k) { return slot(i, k); }, work_);
    dlopt::step(work_.data(), work_.size());
  }

  Config& config() { return config_; }
  const Config& config() const { return config_; }
  std::size_t num_params() const { return params_.size(); }
  const TensorScalars& scalars(std::size_t i) const { return scalars_.at(i); }
  /// State buffer k (named Rule::slots[k]) of parameter i; empty before its first step.
  const AlignedVector<T>& state(std::size_t i, std::size_t k) const { return state_.at(i)[k]; }

 private:
  T* slot(std::size_t i, std::size_t k) {
    AlignedVector<T>& buf = state_[i][k];
    if (!Rule::uses_slot(config_, int(k))) return buf.empty() ? nullptr : buf.data();
    if (buf.empty() && params_[i].size > 0)
      buf.assign(std::size_t(params_[i].size), T(Rule::slot_init(config_, int(k))));
    return buf.data();
  }

  std::vector<ParamView<T>> params_;
  Config config_;
  std::vector<TensorScalars> scalars_;
  std::vector<std::array<AlignedVector<T>, num_slots<Rule>>> state_;
  std::vector<TensorStep<Rule, T>> work_;
};

// PyTorch's names for the C++ classes.
template <class T = float> using SGD = Optimizer<SGDRule, T>;
template <class T = float> using Adam = Optimizer<AdamRule, T>;
template <class T = float> using AdamW = Optimizer<AdamWRule, T>;
template <class T = float> using Adagrad = Optimizer<AdagradRule, T>;
template <class T = float> using RMSprop = Optimizer<RMSpropRule, T>;
template <class T = float> using Adadelta = Optimizer<AdadeltaRule, T>;
template <class T = float> using Adamax = Optimizer<AdamaxRule, T>;
template <class T = float> using NAdam = Optimizer<NAdamRule, T>;
template <class T = float> using RAdam = Optimizer<RAdamRule, T>;
template <class T = float> using Lion = Optimizer<LionRule, T>;
template <class T = float> using DynamicLR = Optimizer<DynamicLRRule, T>;

}  // namespace dlopt
