#pragma once
/// @file radam.hpp
/// RAdam, rectified Adam (Liu et al., 2020), as in torch.optim.RAdam:
///
///   g ← ±g + λ·p  (L2)   or   p ← p·(1 − γλ)  (decoupled)
///   m ← m + (1−β1)·(g − m)            v ← β2·v + (1−β2)·g²
///   ρ∞ ← 2/(1−β2) − 1                 ρₜ ← ρ∞ − 2tβ2ᵗ/(1−β2ᵗ)
///   ρₜ > 5:  r ← √((ρₜ−4)(ρₜ−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρₜ)),
///            p ← p − γ · m/(1−β1ᵗ) · √(1−β2ᵗ)/(√v + ε) · r
///   else:    p ← p − γ · m/(1−β1ᵗ)

#include <array>
#include <cmath>

#include "dlopt/optim/betas.hpp"
#include "dlopt/core/rule.hpp"

namespace dlopt {

/// The hyperparameters of RAdam and their defaults, the same as dlopt.optim.RAdam's in Python.
struct RAdamConfig {
  double lr = 1e-3;  ///< γ, the learning rate
  double beta1 = 0.9;  ///< β₁, decay of the first moment (torch's betas[0])
  double beta2 = 0.999;  ///< β₂, decay of the second moment (torch's betas[1])
  double eps = 1e-8;  ///< ε, added to the denominator
  double weight_decay = 0.0;  ///< λ, the weight decay
  bool decoupled_weight_decay = false;  ///< decoupled weight decay: p ← p(1 − γλ)
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
    f("weight_decay", weight_decay), f("decoupled_weight_decay", decoupled_weight_decay);
    f("maximize", maximize);
  }
};

/// The RAdam rule (core/rule.hpp).
struct RAdamRule : RuleDefaults {
  using Config = RAdamConfig;  ///< its hyperparameters
  static constexpr const char* name = "RAdam";  ///< the optimizer's name (registry, checkpoints)
  static constexpr std::array<const char*, 2> slots = {"exp_avg", "exp_avg_sq"};  ///< m and v, torch's state keys
  /// Both slots, always.
  static bool uses_slot(const Config&, int) { return true; }
  /// m is signed; v is an average of squares.
  static SlotKind slot_kind(int k) { return k == 0 ? SlotKind::Signed : SlotKind::NonNegative; }

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T lr;                     ///< γ
    T bias_correction1;       ///< 1 − β₁ᵗ
    T bias_correction2_sqrt;  ///< √(1−β₂ᵗ)
    T rect;                   ///< r, the variance rectification (1 when not rectified)
    T one_minus_beta1;        ///< 1 − β₁
    T beta2;                  ///< β₂
    T one_minus_beta2;        ///< 1 − β₂
    T eps;                    ///< ε
    T l2;                     ///< λ added to the gradient (L2); 0 when decoupled
    T decay;                  ///< 1 − γλ when decoupled, else 1
    T sign;                   ///< −1 to maximize, else 1
    bool rectified;           ///< ρₜ > 5: the variance is tractable and the adaptive step is taken
  };
  /// ρₜ, r and the bias corrections of step t (host, double), and the weight decay.
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars& s) {
    const double t = double(s.step);
    const double bias_correction2 = 1 - std::pow(c.beta2, t);
    const double rho_inf = 2 / (1 - c.beta2) - 1;
    const double rho_t = rho_inf - 2 * t * std::pow(c.beta2, t) / bias_correction2;
    const bool rectified = rho_t > 5;
    const double rect =
        rectified ? std::sqrt((rho_t - 4) * (rho_t - 2) * rho_inf /
                              ((rho_inf - 4) * (rho_inf - 2) * rho_t))
                  : 1.0;
    const bool decoupled = c.decoupled_weight_decay;
    return {T(c.lr),
            T(1 - std::pow(c.beta1, t)),
            T(std::sqrt(bias_correction2)),
            T(rect),
            T(1 - c.beta1),
            T(c.beta2),
            T(1 - c.beta2),
            T(c.eps),
            T(decoupled ? 0.0 : c.weight_decay),
            T(decoupled ? 1 - c.lr * c.weight_decay : 1.0),
            T(c.maximize ? -1 : 1),
            rectified};
  }

  /// Element i's step, the formulas of the file comment (the CPU loop and the CUDA kernel both call it).
  template <class T>
  DLOPT_HD static void update(const Coeffs<T>& c, int64_t i, T* p, const T* g, T* const* s) {
    T param = p[i] * c.decay;
    T grad = c.sign * g[i];
    if (c.l2 != T(0)) grad += c.l2 * p[i];
    T m = s[0][i] + c.one_minus_beta1 * (grad - s[0][i]);
    T v = c.beta2 * s[1][i] + c.one_minus_beta2 * grad * grad;
    s[0][i] = m;
    s[1][i] = v;
    T step = m / c.bias_correction1 * c.lr;
    if (c.rectified) step = step * (c.bias_correction2_sqrt / (std::sqrt(v) + c.eps)) * c.rect;
    p[i] = param - step;
  }
};

}  // namespace dlopt
