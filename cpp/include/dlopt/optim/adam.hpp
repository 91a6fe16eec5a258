#pragma once
/// @file adam.hpp
/// Adam (Kingma & Ba, 2015, Algorithm 1), with AMSGrad (Reddi et al., 2018) and decoupled weight
/// decay (AdamW, Loshchilov & Hutter, 2019), as in torch.optim.Adam / torch.optim.AdamW:
///
///   g ← ±g + λ·p   (L2)          or   p ← p·(1 − γλ)   (decoupled)
///   m ← m + (1−β1)·(g − m)            v ← β2·v + (1−β2)·g²
///   v̂ ← max(v̂, v) (amsgrad)      or   v̂ ← v
///   p ← p − γ/(1−β1ᵗ) · m / (√v̂ / √(1−β2ᵗ) + ε)

#include <array>
#include <cmath>

#include "dlopt/optim/betas.hpp"
#include "dlopt/core/rule.hpp"

namespace dlopt {

/// The hyperparameters of Adam and their defaults, the same as dlopt.optim.Adam's in Python.
struct AdamConfig {
  double lr = 1e-3;  ///< γ, the learning rate
  double beta1 = 0.9;  ///< β₁, decay of the first moment (torch's betas[0])
  double beta2 = 0.999;  ///< β₂, decay of the second moment (torch's betas[1])
  double eps = 1e-8;  ///< ε, added to the denominator
  double weight_decay = 0.0;  ///< λ, the weight decay
  bool amsgrad = false;  ///< use the maximum of the past second moments (AMSGrad)
  bool maximize = false;  ///< ascend: step along +g
  bool decoupled_weight_decay = false;  ///< true: AdamW

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require_common(lr, eps, weight_decay);
    detail::require_betas(beta1, beta2);
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("beta1", beta1), f("beta2", beta2), f("eps", eps);
    f("weight_decay", weight_decay), f("amsgrad", amsgrad), f("maximize", maximize);
    f("decoupled_weight_decay", decoupled_weight_decay);
  }
};

/// AdamW is Adam with decoupled weight decay on by default (and λ = 1e-2).
struct AdamWConfig : AdamConfig {
  AdamWConfig() {
    weight_decay = 1e-2;
    decoupled_weight_decay = true;
  }
};

/// The Adam rule (core/rule.hpp), AdamW's too.
struct AdamRule : RuleDefaults {
  using Config = AdamConfig;  ///< its hyperparameters
  static constexpr const char* name = "Adam";  ///< the optimizer's name (registry, checkpoints)
  /// m, v and v̂ (AMSGrad's running maximum), torch's state keys.
  static constexpr std::array<const char*, 3> slots = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
  /// m and v always; v̂ only with amsgrad.
  static bool uses_slot(const AdamConfig& c, int k) { return k < 2 || c.amsgrad; }
  /// m is signed; v and v̂ are averages of squares.
  static SlotKind slot_kind(int k) { return k == 0 ? SlotKind::Signed : SlotKind::NonNegative; }

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T step_size;              ///< γ/(1−β₁ᵗ): the learning rate with m's bias correction
    T one_minus_beta1;        ///< 1 − β₁
    T beta2;                  ///< β₂
    T one_minus_beta2;        ///< 1 − β₂
    T bias_correction2_sqrt;  ///< √(1−β₂ᵗ)
    T eps;                    ///< ε
    T l2;                     ///< λ added to the gradient (L2); 0 when decoupled
    T decay;                  ///< 1 − γλ when decoupled (AdamW), else 1
    T sign;                   ///< −1 to maximize, else 1
    bool amsgrad;             ///< normalize by v̂ = max(v̂, v)
  };
  /// The bias corrections of step t and the weight decay in its L2 or decoupled form.
  template <class T>
  static Coeffs<T> coeffs(const AdamConfig& c, const TensorScalars& s) {
    const double t = double(s.step);
    const bool decoupled = c.decoupled_weight_decay;
    return {T(c.lr / (1 - std::pow(c.beta1, t))),
            T(1 - c.beta1),
            T(c.beta2),
            T(1 - c.beta2),
            T(std::sqrt(1 - std::pow(c.beta2, t))),
            T(c.eps),
            T(decoupled ? 0.0 : c.weight_decay),
            T(decoupled ? 1 - c.lr * c.weight_decay : 1.0),
            T(c.maximize ? -1 : 1),
            c.amsgrad};
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
    if (c.amsgrad) v = s[2][i] = detail::max(s[2][i], v);
    T denom = std::sqrt(v) / c.bias_correction2_sqrt + c.eps;
    p[i] = param - c.step_size * (m / denom);
  }
};

/// AdamW: the Adam rule under AdamW's defaults.
struct AdamWRule : AdamRule {
  using Config = AdamWConfig;  ///< Adam's hyperparameters under AdamW's defaults
  static constexpr const char* name = "AdamW";  ///< the optimizer's name (registry, checkpoints)
};

}  // namespace dlopt
