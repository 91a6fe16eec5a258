#pragma once
/// @file lamb.hpp
/// LAMB, layer-wise adaptive moments for large-batch training (You et al., 2020, Algorithm 2), with
/// Adam's bias correction and the trust ratio of the whole tensor:
///
///   m ← β1·m + (1−β1)·g            v ← β2·v + (1−β2)·g²
///   r ← (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε) + λ·p
///   τ ← ‖p‖ / ‖r‖   (1 if either norm is 0)
///   p ← p − γ·τ·r
///
/// The norms are the rule's per-tensor reductions: a first pass sums p² and r² (in double, in the
/// fixed order of core/step.hpp), `finish` turns them into γ·τ, and the elementwise pass applies it.
/// Both passes compute r with the same `direction`, so it is written once.

#include <array>
#include <cmath>

#include "dlopt/core/rule.hpp"
#include "dlopt/optim/betas.hpp"

namespace dlopt {

/// The hyperparameters of LAMB and their defaults, the same as dlopt.optim.LAMB's in Python.
struct LAMBConfig {
  double lr = 1e-3;  ///< γ, the learning rate
  double beta1 = 0.9;  ///< β₁, decay of the first moment (torch's betas[0])
  double beta2 = 0.999;  ///< β₂, decay of the second moment (torch's betas[1])
  double eps = 1e-6;  ///< ε, added to the denominator
  double weight_decay = 0.0;  ///< λ, added to the direction (decoupled from the moments)
  bool maximize = false;  ///< ascend: step along +g

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require_common(lr, eps, weight_decay);
    detail::require_betas(beta1, beta2);
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("beta1", beta1), f("beta2", beta2), f("eps", eps);
    f("weight_decay", weight_decay), f("maximize", maximize);
  }
};

/// The LAMB rule (core/rule.hpp): a reduction pass for the norms, then the elementwise update.
struct LAMBRule : RuleDefaults {
  using Config = LAMBConfig;  ///< its hyperparameters
  static constexpr const char* name = "LAMB";  ///< the optimizer's name (registry, checkpoints)
  static constexpr std::array<const char*, 2> slots = {"exp_avg", "exp_avg_sq"};  ///< m and v
  /// Both slots, always.
  static bool uses_slot(const Config&, int) { return true; }
  /// m is signed; v is an average of squares.
  static SlotKind slot_kind(int k) { return k == 0 ? SlotKind::Signed : SlotKind::NonNegative; }
  static constexpr int reductions = 2;  ///< Σp², Σr²

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T one_minus_beta1;   ///< 1 − β₁
    T beta2;             ///< β₂
    T one_minus_beta2;   ///< 1 − β₂
    T bias_correction1;  ///< 1 − β₁ᵗ
    T bias_correction2;  ///< 1 − β₂ᵗ
    T eps;               ///< ε
    T weight_decay;      ///< λ
    T sign;              ///< −1 to maximize, else 1
    T step_size;  ///< γ·τ, set by finish
    double lr;    ///< γ, for finish
  };
  /// The bias corrections of step t; step_size is γ until finish multiplies in τ.
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars& s) {
    const double t = double(s.step);
    return {T(1 - c.beta1), T(c.beta2), T(1 - c.beta2), T(1 - std::pow(c.beta1, t)),
            T(1 - std::pow(c.beta2, t)), T(c.eps), T(c.weight_decay), T(c.maximize ? -1 : 1), T(c.lr), c.lr};
  }

  /// The new moments and the direction r of element i.
  template <class T>
  DLOPT_HD static T direction(const Coeffs<T>& c, T p, T g, T& m, T& v) {
    const T grad = c.sign * g;
    m = m + c.one_minus_beta1 * (grad - m);
    v = c.beta2 * v + c.one_minus_beta2 * grad * grad;
    return (m / c.bias_correction1) / (std::sqrt(v / c.bias_correction2) + c.eps) + c.weight_decay * p;
  }

  /// Element i's terms of the sums: p² and r² (r from the moments this step will write, which the
  /// reduction pass computes but does not store).
  template <class T>
  DLOPT_HD static std::array<double, reductions> reduce(const Coeffs<T>& c, int64_t i, const T* p, const T* g,
                                                        T* const* s) {
    T m = s[0][i], v = s[1][i];
    const double r = double(direction(c, p[i], g[i], m, v));
    return {double(p[i]) * double(p[i]), r * r};
  }

  /// γ·τ from the tensor's sums (host, or the GPU after its reduction: sqrt and division round the same).
  template <class T>
  DLOPT_HD static void finish(Coeffs<T>& c, const double* sums, int64_t /*rows*/) {
    const double trust = sums[0] > 0 && sums[1] > 0 ? std::sqrt(sums[0]) / std::sqrt(sums[1]) : 1.0;
    c.step_size = T(c.lr * trust);
  }

  /// Element i: the new moments and p ← p − γτ·r.
  template <class T>
  DLOPT_HD static void update(const Coeffs<T>& c, int64_t i, T* p, const T* g, T* const* s) {
    T m = s[0][i], v = s[1][i];
    const T r = direction(c, p[i], g[i], m, v);
    s[0][i] = m;
    s[1][i] = v;
    p[i] = p[i] - c.step_size * r;
  }
};

}  // namespace dlopt
