#pragma once
/// @file dynamic_lr.hpp
/// The dynamic learning rate of dlopt's specification: gradient descent whose step shrinks where the
/// gradient is steep, elementwise
///
///   p ← p − γ / (1 + β·g²) · g
///
/// β = 0 is plain gradient descent; large β damps steps on steep coordinates.

#include <array>

#include "dlopt/core/rule.hpp"

namespace dlopt {

/// The hyperparameters of DynamicLR and their defaults, the same as dlopt.optim.DynamicLR's in Python.
struct DynamicLRConfig {
  double lr = 1e-2;  ///< γ
  double beta = 1.0;  ///< β
  bool maximize = false;  ///< ascend: step along +g

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require(lr >= 0, "lr", lr, "must be >= 0");
    detail::require(beta >= 0, "beta", beta, "must be >= 0");
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("beta", beta), f("maximize", maximize);
  }
};

/// The DynamicLR rule (core/rule.hpp): stateless, one elementwise pass.
struct DynamicLRRule : RuleDefaults {
  using Config = DynamicLRConfig;  ///< its hyperparameters
  static constexpr const char* name = "DynamicLR";  ///< the optimizer's name (registry, checkpoints)
  static constexpr std::array<const char*, 0> slots = {};  ///< no per-element state
  /// Never: the step depends on the current gradient only.
  static bool uses_slot(const Config&, int) { return false; }

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T lr;    ///< γ
    T beta;  ///< β
    T sign;  ///< −1 to maximize, else 1
  };
  /// The config as the compute type T (nothing depends on the step).
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars&) {
    return {T(c.lr), T(c.beta), T(c.maximize ? -1 : 1)};
  }

  /// Element i: p ← p − γ/(1 + β·g²)·g.
  template <class T>
  DLOPT_HD static void update(const Coeffs<T>& c, int64_t i, T* p, const T* g, T* const*) {
    T grad = c.sign * g[i];
    p[i] -= c.lr / (T(1) + c.beta * grad * grad) * grad;
  }
};

}  // namespace dlopt
