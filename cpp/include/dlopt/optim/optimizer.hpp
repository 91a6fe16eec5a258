#pragma once
/// @file optimizer.hpp
/// Optimizer<Rule, T>: the C++ face of every optimizer. It keeps the state (cache-line aligned,
/// allocated lazily on a tensor's first step) for parameter buffers owned by the caller.
///
/// @code
///   std::vector<float> w(1000), b(10), gw(1000), gb(10);
///   dlopt::Adam<float> opt({{w.data(), 1000}, {b.data(), 10}}, {.lr = 1e-3});   // C++20 designators
///   opt.step({gw.data(), gb.data()});   // nullptr skips a parameter this step
///   opt.config().lr = 5e-4;              // hyperparameters may change between steps
///   auto saved = opt.state_dict();       // every slot (stored form), step count, scalar, the config
///   opt.load_state_dict(saved);          // checked in full first: on error nothing changes
/// @endcode

#include <string>
#include <type_traits>
#include <vector>

#include "dlopt/core/aligned.hpp"
#include "dlopt/core/step.hpp"
#include "dlopt/optim/registry.hpp"
#include "dlopt/optim/state.hpp"

namespace dlopt {

/// A parameter buffer owned by the caller, with its shape as dlopt::TensorShape says: for a tensor
/// of rank ≥ 2, `rows` = the product of all dimensions but the last and `batch` = of all but the
/// last two (a matrix: rows, batch 1). Matrix rules (Muon, Adafactor) need them; LARS skips vectors
/// (rows 0) under exclude_1d.
template <class T>
struct ParamView {
  T* data;            ///< the elements, updated in place
  int64_t size;       ///< the number of elements
  int64_t rows = 0;   ///< the product of all dimensions but the last (0 for a vector)
  int64_t batch = 1;  ///< the product of all dimensions but the last two
  /// The shape as the rules see it.
  TensorShape shape() const { return {size, rows, batch}; }
};

namespace detail {
/// The error of a step after eval() (Rule::has_modes), host and device optimizers alike.
inline InvalidArgument not_in_train_mode(const std::string& name) {
  return InvalidArgument(name + ": not in train mode; call train() before step() "
                         "(and eval() before evaluating or saving the model)");
}

/// Throws InvalidArgument unless `options` suit parameters of T (master_weights: 16-bit only).
template <class T>
void check_options(const StorageOptions& options) {
  if (options.master_weights && !is_16bit(storage_of<T>))
    throw InvalidArgument("master_weights: only for 16-bit parameters");
}

/// The tensor list of one step: a TensorStep for every parameter that has a gradient, its state
/// buffers from slot(i, k) (which allocates them on first use). Checks the gradient count and the
/// config first, so a bad call allocates nothing. Shared by the host and the device optimizers.
template <class Rule, class T, class Slot, class Master>
void collect_steps(const std::vector<ParamView<T>>& params, const std::vector<const T*>& grads,
                   const typename Rule::Config& config, const StorageOptions& options,
                   std::vector<TensorScalars>& scalars, Slot&& slot, Master&& master,
                   std::vector<TensorStep<Rule, compute_t<T>>>& out) {
  if (grads.size() != params.size())
    throw InvalidArgument("grads: expected " + std::to_string(params.size()) + " gradients, got " +
                          std::to_string(grads.size()));
  config.validate();
  out.clear();  // reused: no allocation per step
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (!grads[i]) continue;
    TensorStep<Rule, compute_t<T>> t;
    t.param = params[i].data;
    t.grad = grads[i];
    t.size = params[i].size;
    t.config = &config;
    t.scalars = &scalars[i];
    t.rounding = {options.stochastic_rounding, options.seed, uint64_t(i)};
    t.rows = params[i].rows;
    t.batch = params[i].batch;
    for (std::size_t k = 0; k < num_slots<Rule>; ++k) t.slots[k] = slot(i, k);
    t.master = master(i);
    out.push_back(t);
  }
}
}  // namespace detail

/// An optimizer over caller-owned parameters of type T: float, double, or the 16-bit
/// dlopt::bfloat16 / dlopt::float16 (computed in float, written back with stochastic rounding
/// unless `options` says otherwise). `options.state_dtype` chooses how state is stored.
template <class Rule, class T = float>
class Optimizer {
 public:
  using Config = typename Rule::Config;  ///< the rule's hyperparameters

  /// An optimizer over `params` (caller-owned; none may be null unless empty). Throws
  /// InvalidArgument for an invalid `config`, master_weights with non-16-bit T, or a null buffer.
  explicit Optimizer(std::vector<ParamView<T>> params, Config config = {}, StorageOptions options = {})
      : params_(std::move(params)), config_(config), options_(options), scalars_(params_.size()),
        state_(params_.size()), master_(params_.size()) {
    config_.validate();
    detail::check_options<T>(options_);
    for (std::size_t i = 0; i < params_.size(); ++i)
      if (params_[i].size < 0 || (params_[i].size > 0 && !params_[i].data))
        throw InvalidArgument("params[" + std::to_string(i) + "]: null or negative-size buffer");
  }

  /// One step: grads[i] has params[i].size elements, or is nullptr to leave params[i] alone.
  void step(const std::vector<const T*>& grads) {
    if (!train_mode_) throw detail::not_in_train_mode(Rule::name);
    detail::collect_steps<Rule>(
        params_, grads, config_, options_, scalars_,
        [this](std::size_t i, std::size_t k) { return slot(i, k); },
        [this](std::size_t i) { return master(i); }, work_);
    dlopt::step(work_.data(), work_.size());
  }

  /// Schedule-Free's switch (Rule::has_modes; for any other rule both are no-ops): train() moves
  /// each parameter that has stepped from the average x to y, where gradients are taken; eval()
  /// moves it to x, the weights to evaluate or save. Steps need train mode, the mode of a new
  /// optimizer. A 16-bit parameter with a master copy moves the copy and takes it rounded to nearest.
  void train() { set_mode(true); }
  void eval() { set_mode(false); }  ///< see train()
  /// False after eval() (rules with modes only).
  bool train_mode() const { return train_mode_; }

  /// The hyperparameters, read by every step: `opt.config().lr = schedule.lr(t)` changes the lr
  /// of the next step (checked by that step; a bad value throws before anything changes).
  Config& config() { return config_; }
  /// The hyperparameters.
  const Config& config() const { return config_; }
  /// How state is stored and 16-bit parameters are rounded.
  const StorageOptions& options() const { return options_; }
  /// The number of parameter buffers.
  std::size_t num_params() const { return params_.size(); }
  /// The per-tensor scalars of parameter i (its step count, ...).
  const TensorScalars& scalars(std::size_t i) const { return scalars_.at(i); }
  /// State buffer k (named Rule::slots[k]) of parameter i; empty before its first step.
  const StateBuffer& state(std::size_t i, std::size_t k) const { return state_.at(i)[k]; }
  /// The parameter buffers, as given to the constructor.
  const std::vector<ParamView<T>>& params() const { return params_; }
  /// Each parameter's shape (size, rows, batch), in order.
  std::vector<TensorShape> shapes() const {
    std::vector<TensorShape> out;
    for (const ParamView<T>& p : params_) out.push_back(p.shape());
    return out;
  }

  /// A copy of the whole state: config, storage options and, per parameter, the step count, the
  /// rule's host scalars, every slot in its stored form and the master copy.
  OptimizerState<Rule> state_dict() const {
    OptimizerState<Rule> s{config_, options_, std::vector<TensorState<Rule>>(params_.size()), train_mode_};
    for (std::size_t i = 0; i < params_.size(); ++i) {
      s.tensors[i].scalars = scalars_[i];
      s.tensors[i].slots = state_[i];
      s.tensors[i].master = master_[i];
    }
    return s;
  }
  /// Throws InvalidArgument unless `s` fits this optimizer (detail::check_state); changes nothing.
  void check_state(const OptimizerState<Rule>& s) const { detail::check_state(s, shapes(), storage_of<T>); }
  /// Replaces the config, storage options and state by `s`, after checking all of it: on error
  /// nothing changes. The parameters themselves are the caller's (dlopt::load restores both).
  void load_state_dict(OptimizerState<Rule> s) {
    check_state(s);
    config_ = s.config;
    options_ = s.options;
    train_mode_ = s.train_mode;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      scalars_[i] = s.tensors[i].scalars;
      state_[i] = std::move(s.tensors[i].slots);
      master_[i] = std::move(s.tensors[i].master);
    }
  }

 private:
  void set_mode(bool train) {
    if constexpr (Rule::has_modes) {
      if (train == train_mode_) return;
      config_.validate();  // the weight comes from β
      using C = compute_t<T>;
      const C w = C(Rule::mode_weight(config_, train));
      for (std::size_t i = 0; i < params_.size(); ++i) {
        if (state_[i][0].empty()) continue;  // not stepped yet: y = x
        const C* z = state_[i][0].template data<C>();
        const int64_t n = params_[i].size;
        if constexpr (std::is_same_v<T, C>) {
          for (int64_t j = 0; j < n; ++j) Rule::move(j, params_[i].data, z, w);
        } else {  // 16-bit: move the float32 master copy (or the widened parameter), store to nearest
          AlignedVector<float> widened;
          float* x = master_[i].empty() ? nullptr : master_[i].data();
          if (!x) {
            widened.resize(std::size_t(n));
            load_float(params_[i].data, n, widened.data());
            x = widened.data();
          }
          for (int64_t j = 0; j < n; ++j) Rule::move(j, x, z, w);
          from_float(Buffer(params_[i].data), n, x);
        }
      }
      train_mode_ = train;
    }
  }
  Buffer slot(std::size_t i, std::size_t k) {
    StateBuffer& buf = state_[i][k];
    const auto n = std::size_t(slot_elements<Rule>(config_, int(k), params_[i].shape()));
    if (n == 0) return buf.view();
    if (buf.empty()) buf = new_slot<Rule>(config_, int(k), int64_t(n), options_.state_dtype, storage_of<T>);
    return buf.view();
  }
  float* master(std::size_t i) {
    if (!options_.master_weights || params_[i].size == 0) return nullptr;
    AlignedVector<float>& m = master_[i];
    if (m.empty()) {
      m.resize(std::size_t(params_[i].size));
      load_float(params_[i].data, params_[i].size, m.data());
    }
    return m.data();
  }
  template <class U>
  static void load_float(const U* p, int64_t n, float* out) {
    if constexpr (is_16bit(storage_of<U>)) to_float(Buffer(const_cast<U*>(p)), n, out);
  }

  std::vector<ParamView<T>> params_;
  Config config_;
  StorageOptions options_;
  std::vector<TensorScalars> scalars_;
  std::vector<std::array<StateBuffer, num_slots<Rule>>> state_;
  std::vector<AlignedVector<float>> master_;
  std::vector<TensorStep<Rule, compute_t<T>>> work_;
  bool train_mode_ = true;  ///< Rule::has_modes: the parameters hold y (true) or the average x
};

/// @name PyTorch's names for the C++ classes
/// `dlopt::Adam<float>` is `dlopt::Optimizer<dlopt::AdamRule, float>`, and so on.
/// @{
template <class T = float> using SGD = Optimizer<SGDRule, T>;  ///< SGD (rule SGDRule)
template <class T = float> using Adam = Optimizer<AdamRule, T>;  ///< Adam (rule AdamRule)
template <class T = float> using AdamW = Optimizer<AdamWRule, T>;  ///< AdamW (rule AdamWRule)
template <class T = float> using Adagrad = Optimizer<AdagradRule, T>;  ///< Adagrad (rule AdagradRule)
template <class T = float> using RMSprop = Optimizer<RMSpropRule, T>;  ///< RMSprop (rule RMSpropRule)
template <class T = float> using Adadelta = Optimizer<AdadeltaRule, T>;  ///< Adadelta (rule AdadeltaRule)
template <class T = float> using Adamax = Optimizer<AdamaxRule, T>;  ///< Adamax (rule AdamaxRule)
template <class T = float> using NAdam = Optimizer<NAdamRule, T>;  ///< NAdam (rule NAdamRule)
template <class T = float> using RAdam = Optimizer<RAdamRule, T>;  ///< RAdam (rule RAdamRule)
template <class T = float> using Lion = Optimizer<LionRule, T>;  ///< Lion (rule LionRule)
template <class T = float> using LAMB = Optimizer<LAMBRule, T>;  ///< LAMB (rule LAMBRule)
template <class T = float> using Muon = Optimizer<MuonRule, T>;  ///< Muon (rule MuonRule)
template <class T = float> using DynamicLR = Optimizer<DynamicLRRule, T>;  ///< DynamicLR (rule DynamicLRRule)
template <class T = float> using Rprop = Optimizer<RpropRule, T>;  ///< Rprop (rule RpropRule)
template <class T = float> using ASGD = Optimizer<ASGDRule, T>;  ///< ASGD (rule ASGDRule)
template <class T = float> using ADOPT = Optimizer<ADOPTRule, T>;  ///< ADOPT (rule ADOPTRule)
template <class T = float> using AdEMAMix = Optimizer<AdEMAMixRule, T>;  ///< AdEMAMix (rule AdEMAMixRule)
template <class T = float> using LARS = Optimizer<LARSRule, T>;  ///< LARS (rule LARSRule)
template <class T = float> using ScheduleFreeSGD = Optimizer<ScheduleFreeSGDRule, T>;  ///< ScheduleFreeSGD (rule ScheduleFreeSGDRule)
template <class T = float> using ScheduleFreeAdamW = Optimizer<ScheduleFreeAdamWRule, T>;  ///< ScheduleFreeAdamW (rule ScheduleFreeAdamWRule)
template <class T = float> using Adafactor = Optimizer<AdafactorRule, T>;  ///< Adafactor (rule AdafactorRule)
/// @}

}  // namespace dlopt
