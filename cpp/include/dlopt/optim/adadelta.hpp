#pragma once
/// @file adadelta.hpp
/// Adadelta (Zeiler, 2012), as in torch.optim.Adadelta:
///
///   g ← ±g + λ·p                    v ← ρ·v + (1−ρ)·g²
///   Δ ← √(u + ε) / √(v + ε) · g     u ← ρ·u + (1−ρ)·Δ²
///   p ← p − γ·Δ

#include <array>
#include <cmath>

#include "dlopt/optim/betas.hpp"
#include "dlopt/core/rule.hpp"

namespace dlopt {

/// The hyperparameters of Adadelta and their defaults, the same as dlopt.optim.Adadelta's in Python.
struct AdadeltaConfig {
  double lr = 1.0;  ///< γ, the learning rate
  double rho = 0.9;  ///< ρ, decay of the running averages
  double eps = 1e-6;  ///< ε, added to the denominator
  double weight_decay = 0.0;  ///< λ, the weight decay
  bool maximize = false;  ///< ascend: step along +g

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require_common(lr, eps, weight_decay);
    detail::require(rho >= 0 && rho <= 1, "rho", rho, "must be in [0, 1]");
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("rho", rho), f("eps", eps), f("weight_decay", weight_decay);
    f("maximize", maximize);
  }
};

/// The Adadelta rule (core/rule.hpp).
struct AdadeltaRule : RuleDefaults {
  using Config = AdadeltaConfig;  ///< its hyperparameters
  static constexpr const char* name = "Adadelta";  ///< the optimizer's name (registry, checkpoints)
  /// v (running average of g²) and u (running average of Δ²), torch's state keys.
  static constexpr std::array<const char*, 2> slots = {"square_avg", "acc_delta"};
  /// Both slots, always.
  static bool uses_slot(const Config&, int) { return true; }
  /// Both slots are averages of squares.
  static SlotKind slot_kind(int) { return SlotKind::NonNegative; }

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T lr;             ///< γ
    T rho;            ///< ρ
    T one_minus_rho;  ///< 1 − ρ
    T eps;            ///< ε
    T weight_decay;   ///< λ
    T sign;           ///< −1 to maximize, else 1
  };
  /// The config as T (nothing depends on the step).
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars&) {
    return {T(c.lr), T(c.rho), T(1 - c.rho), T(c.eps), T(c.weight_decay), T(c.maximize ? -1 : 1)};
  }

  /// Element i: v, Δ, u and p as in the file comment.
  template <class T>
  DLOPT_HD static void update(const Coeffs<T>& c, int64_t i, T* p, const T* g, T* const* s) {
    T grad = c.sign * g[i];
    if (c.weight_decay != T(0)) grad += c.weight_decay * p[i];
    T v = c.rho * s[0][i] + c.one_minus_rho * grad * grad;
    s[0][i] = v;
    T delta = std::sqrt(s[1][i] + c.eps) / std::sqrt(v + c.eps) * grad;
    s[1][i] = c.rho * s[1][i] + c.one_minus_rho * delta * delta;
    p[i] -= c.lr * delta;
  }
};

}  // namespace dlopt
