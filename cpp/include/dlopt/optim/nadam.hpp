#pragma once
/// @file nadam.hpp
/// NAdam, Adam with Nesterov momentum (Dozat, 2016), with the momentum-decay schedule and optional
/// decoupled weight decay of torch.optim.NAdam:
///
///   μₜ ← β1·(1 − ½·0.96^(t·ψ))        Πₜ ← Πₜ₋₁·μₜ
///   g ← ±g + λ·p  (L2)   or   p ← p·(1 − γλ)  (decoupled)
///   m ← m + (1−β1)·(g − m)            v ← β2·v + (1−β2)·g²
///   d ← √(v / (1−β2ᵗ)) + ε
///   p ← p − γ(1−μₜ)/(1−Πₜ) · g/d − γμₜ₊₁/(1−Πₜμₜ₊₁) · m/d

#include <array>
#include <cmath>

#include "dlopt/optim/betas.hpp"
#include "dlopt/core/rule.hpp"

namespace dlopt {

/// The hyperparameters of NAdam and their defaults, the same as dlopt.optim.NAdam's in Python.
struct NAdamConfig {
  double lr = 2e-3;  ///< γ, the learning rate
  double beta1 = 0.9;  ///< β₁, decay of the first moment (torch's betas[0])
  double beta2 = 0.999;  ///< β₂, decay of the second moment (torch's betas[1])
  double eps = 1e-8;  ///< ε, added to the denominator
  double weight_decay = 0.0;  ///< λ, the weight decay
  double momentum_decay = 4e-3;  ///< ψ
  bool decoupled_weight_decay = false;  ///< decoupled weight decay: p ← p(1 − γλ)
  bool maximize = false;  ///< ascend: step along +g

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require_common(lr, eps, weight_decay);
    detail::require_betas(beta1, beta2);
    detail::require(momentum_decay >= 0, "momentum_decay", momentum_decay, "must be >= 0");
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("beta1", beta1), f("beta2", beta2), f("eps", eps);
    f("weight_decay", weight_decay), f("momentum_decay", momentum_decay);
    f("decoupled_weight_decay", decoupled_weight_decay), f("maximize", maximize);
  }
};

/// The NAdam rule (core/rule.hpp).
struct NAdamRule : RuleDefaults {
  using Config = NAdamConfig;  ///< its hyperparameters
  static constexpr const char* name = "NAdam";  ///< the optimizer's name (registry, checkpoints)
  static constexpr std::array<const char*, 1> scalars = {"mu_product"};  ///< Πₜ
  /// Π₀ = 1 (an empty product).
  static double scalar_init(const Config&, int) { return 1.0; }
  static constexpr std::array<const char*, 2> slots = {"exp_avg", "exp_avg_sq"};  ///< m and v, torch's state keys
  /// Both slots, always.
  static bool uses_slot(const Config&, int) { return true; }
  /// m is signed; v is an average of squares.
  static SlotKind slot_kind(int k) { return k == 0 ? SlotKind::Signed : SlotKind::NonNegative; }

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T grad_coeff;        ///< −γ(1−μₜ)/(1−Πₜ), the weight of g/d
    T avg_coeff;         ///< −γμₜ₊₁/(1−Πₜμₜ₊₁), the weight of m/d (the Nesterov look-ahead)
    T one_minus_beta1;   ///< 1 − β₁
    T beta2;             ///< β₂
    T one_minus_beta2;   ///< 1 − β₂
    T bias_correction2;  ///< 1 − β₂ᵗ
    T eps;               ///< ε
    T l2;                ///< λ added to the gradient (L2); 0 when decoupled
    T decay;             ///< 1 − γλ when decoupled, else 1
    T sign;              ///< −1 to maximize, else 1
  };
  /// The momentum schedule μₜ = β₁·(1 − ½·0.96^(t·ψ)).
  static double mu(const Config& c, double t) { return c.beta1 * (1 - 0.5 * std::pow(0.96, t * c.momentum_decay)); }
  /// Πₜ ← Πₜ₋₁·μₜ.
  static void advance(const Config& c, TensorScalars& s) { s.value[0] *= mu(c, double(s.step)); }

  /// The two step weights from μₜ, μₜ₊₁ and Πₜ, the bias correction of v, and the weight decay.
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars& s) {
    const double t = double(s.step);
    const double mu_t = mu(c, t), mu_next = mu(c, t + 1), mu_product = s.value[0];
    const bool decoupled = c.decoupled_weight_decay;
    return {T(-c.lr * (1 - mu_t) / (1 - mu_product)),
            T(-c.lr * mu_next / (1 - mu_product * mu_next)),
            T(1 - c.beta1),
            T(c.beta2),
            T(1 - c.beta2),
            T(1 - std::pow(c.beta2, t)),
            T(c.eps),
            T(decoupled ? 0.0 : c.weight_decay),
            T(decoupled ? 1 - c.lr * c.weight_decay : 1.0),
            T(c.maximize ? -1 : 1)};
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
    T denom = std::sqrt(v / c.bias_correction2) + c.eps;
    param += c.grad_coeff * (grad / denom);
    p[i] = param + c.avg_coeff * (m / denom);
  }
};

}  // namespace dlopt
