#pragma once
/// @file sgd.hpp
/// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay,
/// as in torch.optim.SGD (Sutskever et al., 2013 for Nesterov momentum):
///
///   g ← ±g + λ·p
///   b ← g                      (first step)   b ← μ·b + (1−τ)·g   (later steps)
///   g ← g + μ·b  (nesterov)    g ← b          (otherwise; only when μ ≠ 0)
///   p ← p − γ·g
///
/// Full-batch gradient descent is this rule fed full-batch gradients.

#include <array>

#include "dlopt/core/rule.hpp"

namespace dlopt {

/// The hyperparameters of SGD and their defaults, the same as dlopt.optim.SGD's in Python.
struct SGDConfig {
  double lr = 1e-3;            ///< γ
  double momentum = 0.0;       ///< μ
  double dampening = 0.0;      ///< τ
  double weight_decay = 0.0;   ///< λ (L2 penalty added to the gradient)
  bool nesterov = false;  ///< Nesterov momentum
  bool maximize = false;  ///< ascend: step along +g

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require(lr >= 0, "lr", lr, "must be >= 0");
    detail::require(momentum >= 0, "momentum", momentum, "must be >= 0");
    detail::require(weight_decay >= 0, "weight_decay", weight_decay, "must be >= 0");
    detail::require(dampening == dampening, "dampening", dampening, "must not be NaN");
    if (nesterov && (momentum <= 0 || dampening != 0))
      throw InvalidArgument("Invalid nesterov: requires momentum > 0 and dampening = 0");
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("momentum", momentum), f("dampening", dampening);
    f("weight_decay", weight_decay), f("nesterov", nesterov), f("maximize", maximize);
  }
};

/// The SGD rule (core/rule.hpp).
struct SGDRule : RuleDefaults {
  using Config = SGDConfig;  ///< its hyperparameters
  static constexpr const char* name = "SGD";  ///< the optimizer's name (registry, checkpoints)
  static constexpr std::array<const char*, 1> slots = {"momentum_buffer"};  ///< b, torch's state key
  /// The momentum buffer exists only with momentum (μ ≠ 0), as in torch.
  static bool uses_slot(const Config& c, int) { return c.momentum != 0; }

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T lr;                   ///< γ
    T momentum;             ///< μ
    T one_minus_dampening;  ///< 1 − τ
    T weight_decay;         ///< λ
    T sign;                 ///< −1 to maximize, else 1
    bool nesterov;          ///< step along g + μ·b instead of b
    bool first_step;        ///< torch's first step sets b ← g (no dampening)
  };
  /// The config as T, and whether this is the tensor's first step.
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars& s) {
    return {T(c.lr), T(c.momentum), T(1 - c.dampening), T(c.weight_decay),
            T(c.maximize ? -1 : 1), c.nesterov, s.step == 1};
  }

  /// Element i: the momentum buffer and the step, as in the file comment.
  template <class T>
  DLOPT_HD static void update(const Coeffs<T>& c, int64_t i, T* p, const T* g, T* const* s) {
    T grad = c.sign * g[i];
    if (c.weight_decay != T(0)) grad += c.weight_decay * p[i];
    if (c.momentum != T(0)) {
      T& buf = s[0][i];
      buf = c.first_step ? grad : c.momentum * buf + c.one_minus_dampening * grad;
      grad = c.nesterov ? grad + c.momentum * buf : buf;
    }
    p[i] -= c.lr * grad;
  }
};

}  // namespace dlopt
