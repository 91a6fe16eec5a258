#pragma once
/// @file adamax.hpp
/// Adamax, the infinity-norm variant of Adam (Kingma & Ba, 2015, Algorithm 2), as in torch.optim.Adamax:
///
///   g ← ±g + λ·p               m ← m + (1−β1)·(g − m)
///   u ← max(β2·u, |g| + ε)     p ← p − γ/(1−β1ᵗ) · m / u

#include <array>
#include <cmath>

#include "dlopt/optim/betas.hpp"
#include "dlopt/core/rule.hpp"

namespace dlopt {

/// The hyperparameters of Adamax and their defaults, the same as dlopt.optim.Adamax's in Python.
struct AdamaxConfig {
  double lr = 2e-3;  ///< γ, the learning rate
  double beta1 = 0.9;  ///< β₁, decay of the first moment (torch's betas[0])
  double beta2 = 0.999;  ///< β₂, decay of the second moment (torch's betas[1])
  double eps = 1e-8;  ///< ε, added to the denominator
  double weight_decay = 0.0;  ///< λ, the weight decay
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

/// The Adamax rule (core/rule.hpp).
struct AdamaxRule : RuleDefaults {
  using Config = AdamaxConfig;  ///< its hyperparameters
  static constexpr const char* name = "Adamax";  ///< the optimizer's name (registry, checkpoints)
  /// m (first moment) and u (exponentially weighted infinity norm), torch's state keys.
  static constexpr std::array<const char*, 2> slots = {"exp_avg", "exp_inf"};
  /// Both slots, always.
  static bool uses_slot(const Config&, int) { return true; }
  /// m is signed; u is a maximum of absolute values.
  static SlotKind slot_kind(int k) { return k == 0 ? SlotKind::Signed : SlotKind::NonNegative; }

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T clr;              ///< γ/(1−β₁ᵗ): the learning rate with m's bias correction
    T one_minus_beta1;  ///< 1 − β₁
    T beta2;            ///< β₂
    T eps;              ///< ε
    T weight_decay;     ///< λ
    T sign;             ///< −1 to maximize, else 1
  };
  /// The bias-corrected learning rate of step t and the config as T.
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars& s) {
    return {T(c.lr / (1 - std::pow(c.beta1, double(s.step)))),
            T(1 - c.beta1),
            T(c.beta2),
            T(c.eps),
            T(c.weight_decay),
            T(c.maximize ? -1 : 1)};
  }

  /// Element i: m, u and p as in the file comment.
  template <class T>
  DLOPT_HD static void update(const Coeffs<T>& c, int64_t i, T* p, const T* g, T* const* s) {
    T grad = c.sign * g[i];
    if (c.weight_decay != T(0)) grad += c.weight_decay * p[i];
    T m = s[0][i] + c.one_minus_beta1 * (grad - s[0][i]);
    T u = detail::max(c.beta2 * s[1][i], std::abs(grad) + c.eps);
    s[0][i] = m;
    s[1][i] = u;
    p[i] -= c.clr * (m / u);
  }
};

}  // namespace dlopt
