#pragma once
/// @file lion.hpp
/// Lion, evolved sign momentum (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms",
/// Algorithm 2), with decoupled weight decay:
///
///   c ← β1·m + (1−β1)·g
///   p ← p·(1 − γλ) − γ·sign(c)
///   m ← β2·m + (1−β2)·g

#include <array>

#include "dlopt/optim/betas.hpp"
#include "dlopt/core/rule.hpp"

namespace dlopt {

/// The hyperparameters of Lion and their defaults, the same as dlopt.optim.Lion's in Python.
struct LionConfig {
  double lr = 1e-4;  ///< γ, the learning rate
  double beta1 = 0.9;  ///< β₁, interpolation of the update (torch's betas[0])
  double beta2 = 0.99;  ///< β₂, decay of the momentum (torch's betas[1])
  double weight_decay = 0.0;  ///< λ, the weight decay
  bool maximize = false;  ///< ascend: step along +g

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require_common(lr, 0.0, weight_decay);
    detail::require_betas(beta1, beta2);
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("beta1", beta1), f("beta2", beta2), f("weight_decay", weight_decay);
    f("maximize", maximize);
  }
};

/// The Lion rule (core/rule.hpp).
struct LionRule : RuleDefaults {
  using Config = LionConfig;  ///< its hyperparameters
  static constexpr const char* name = "Lion";  ///< the optimizer's name (registry, checkpoints)
  static constexpr std::array<const char*, 1> slots = {"exp_avg"};  ///< m, the momentum
  /// The momentum, always.
  static bool uses_slot(const Config&, int) { return true; }

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T lr;               ///< γ
    T beta1;            ///< β₁
    T one_minus_beta1;  ///< 1 − β₁
    T beta2;            ///< β₂
    T one_minus_beta2;  ///< 1 − β₂
    T decay;            ///< 1 − γλ, the decoupled weight decay
    T sign;             ///< −1 to maximize, else 1
  };
  /// The config as T (nothing depends on the step).
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars&) {
    return {T(c.lr),        T(c.beta1),           T(1 - c.beta1),         T(c.beta2),
            T(1 - c.beta2), T(1 - c.lr * c.weight_decay), T(c.maximize ? -1 : 1)};
  }

  /// Element i's step, the formulas of the file comment (the CPU loop and the CUDA kernel both call it).
  template <class T>
  DLOPT_HD static void update(const Coeffs<T>& c, int64_t i, T* p, const T* g, T* const* s) {
    T grad = c.sign * g[i];
    T m = s[0][i];
    T direction = detail::sign(c.beta1 * m + c.one_minus_beta1 * grad);
    p[i] = p[i] * c.decay - c.lr * direction;
    s[0][i] = c.beta2 * m + c.one_minus_beta2 * grad;
  }
};

}  // namespace dlopt
