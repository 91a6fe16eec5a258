#pragma once
/// @file ademamix.hpp
/// AdEMAMix, Adam with a mixture of a fast and a slow gradient EMA (Pagliardini et al., 2024,
/// Algorithm 1), as its reference code (apple/ml-ademamix), with its optional warmups of α and β3:
///
///   m1 ← β1·m1 + (1−β1)·g      m2 ← β3(t)·m2 + (1−β3(t))·g      v ← β2·v + (1−β2)·g²
///   p ← p − γ·( (m1/(1−β1ᵗ) + α(t)·m2) / (√v/√(1−β2ᵗ) + ε) + λ·p )
///
///   α(t)  = α·t/T_α for t < T_α, else α                           (alpha_warmup T_α; 0 = none)
///   β3(t) = f⁻¹((1−t/T)·f(β1) + t/T·f(β3)) for t < T, else β3       (beta3_warmup T; 0 = none)
///   with the half-life f(β) = ln ½ / ln(β + 10⁻⁸) − 1, f⁻¹(h) = ½^(1/(h+1)).
///
/// With β1 = 0 the fast EMA is the gradient itself and is not stored.

#include <array>
#include <cmath>

#include "dlopt/core/rule.hpp"
#include "dlopt/optim/betas.hpp"

namespace dlopt {

/// The hyperparameters of AdEMAMix and their defaults, the same as dlopt.optim.AdEMAMix's in Python.
struct AdEMAMixConfig {
  double lr = 1e-3;  ///< γ, the learning rate
  double beta1 = 0.9;  ///< β₁, decay of the first moment (torch's betas[0])
  double beta2 = 0.999;  ///< β₂, decay of the second moment (torch's betas[1])
  double beta3 = 0.9999;  ///< β₃, decay of the slow EMA (torch's betas[2])
  double alpha = 2.0;  ///< α, weight of the slow EMA
  double beta3_warmup = 0;  ///< T (steps); 0: none (the reference's None)
  double alpha_warmup = 0;  ///< T_α (steps); 0: none
  double eps = 1e-8;  ///< ε, added to the denominator
  double weight_decay = 0.0;  ///< λ, decoupled (scaled by γ, as AdamW)
  bool maximize = false;  ///< ascend: step along +g

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require_common(lr, eps, weight_decay);
    detail::require_betas(beta1, beta2);
    detail::require(beta3 >= 0 && beta3 < 1, "betas[2]", beta3, "must be in [0, 1)");
    detail::require(alpha >= 0, "alpha", alpha, "must be >= 0");
    detail::require(beta3_warmup >= 0, "beta3_warmup", beta3_warmup, "must be >= 0 (or None)");
    detail::require(alpha_warmup >= 0, "alpha_warmup", alpha_warmup, "must be >= 0 (or None)");
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("beta1", beta1), f("beta2", beta2), f("beta3", beta3), f("alpha", alpha);
    f("beta3_warmup", beta3_warmup), f("alpha_warmup", alpha_warmup), f("eps", eps);
    f("weight_decay", weight_decay), f("maximize", maximize);
  }
};

/// The AdEMAMix rule (core/rule.hpp).
struct AdEMAMixRule : RuleDefaults {
  using Config = AdEMAMixConfig;  ///< its hyperparameters
  static constexpr const char* name = "AdEMAMix";  ///< the optimizer's name (registry, checkpoints)
  /// m1, m2 and v, the reference's state keys.
  static constexpr std::array<const char*, 3> slots = {"exp_avg_fast", "exp_avg_slow", "exp_avg_sq"};
  /// m1 only when β₁ ≠ 0 (else it is the gradient itself); m2 and v always.
  static bool uses_slot(const Config& c, int k) { return k != 0 || c.beta1 != 0; }
  /// The EMAs are signed; v is an average of squares.
  static SlotKind slot_kind(int k) { return k == 2 ? SlotKind::NonNegative : SlotKind::Signed; }

  /// α(t): linear warmup from 0 over T_α steps, then α.
  static double alpha_at(const Config& c, double t) {
    return t < c.alpha_warmup ? t / c.alpha_warmup * c.alpha : c.alpha;
  }
  /// β3(t): the half-life interpolated linearly from β₁'s to β₃'s over T steps, then β₃.
  static double beta3_at(const Config& c, double t) {
    if (!(t < c.beta3_warmup)) return c.beta3;
    const auto half_life = [](double beta) { return std::log(0.5) / std::log(beta + 1e-8) - 1; };
    const double a = t / c.beta3_warmup;
    return std::pow(0.5, 1 / ((1 - a) * half_life(c.beta1) + a * half_life(c.beta3) + 1));
  }

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T lr;                     ///< γ
    T beta1;                  ///< β₁
    T one_minus_beta1;        ///< 1 − β₁
    T beta2;                  ///< β₂
    T one_minus_beta2;        ///< 1 − β₂
    T beta3;                  ///< β3(t)
    T one_minus_beta3;        ///< 1 − β3(t)
    T bias_correction1;       ///< 1 − β₁ᵗ
    T bias_correction2_sqrt;  ///< √(1−β₂ᵗ)
    T alpha;                  ///< α(t)
    T eps;                    ///< ε
    T weight_decay;           ///< λ
    T sign;                   ///< −1 to maximize, else 1
    bool fast;  ///< β1 ≠ 0: the fast EMA is stored
  };
  /// The warmed-up α(t) and β3(t) and the bias corrections of step t.
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars& s) {
    const double t = double(s.step), beta3 = beta3_at(c, t);
    return {T(c.lr), T(c.beta1), T(1 - c.beta1), T(c.beta2), T(1 - c.beta2), T(beta3), T(1 - beta3),
            T(1 - std::pow(c.beta1, t)), T(std::sqrt(1 - std::pow(c.beta2, t))), T(alpha_at(c, t)),
            T(c.eps), T(c.weight_decay), T(c.maximize ? -1 : 1), c.beta1 != 0};
  }

  /// Element i's step, the formulas of the file comment (the CPU loop and the CUDA kernel both call it).
  template <class T>
  DLOPT_HD static void update(const Coeffs<T>& c, int64_t i, T* p, const T* g, T* const* s) {
    const T grad = c.sign * g[i];
    T fast = grad;
    if (c.fast) fast = s[0][i] = s[0][i] * c.beta1 + grad * c.one_minus_beta1;
    const T slow = s[1][i] = s[1][i] * c.beta3 + grad * c.one_minus_beta3;
    const T v = s[2][i] = s[2][i] * c.beta2 + c.one_minus_beta2 * grad * grad;
    const T denom = std::sqrt(v) / c.bias_correction2_sqrt + c.eps;
    const T update = (fast / c.bias_correction1 + c.alpha * slow) / denom + c.weight_decay * p[i];
    p[i] = p[i] - c.lr * update;
  }
};

}  // namespace dlopt
