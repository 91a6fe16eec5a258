#pragma once
/// @file adopt.hpp
/// ADOPT, Adam that converges with any β2 (Taniguchi et al., 2024, Algorithm 2 with clipping), as
/// its reference code (iShohei220/adopt): the gradient is normalized by the *previous* second
/// moment, clipped, and only then enters the momentum.
///
///   t = 1:   v ← g²                                     (no parameter update)
///   t > 1:   n ← clamp(g / max(√v, ε), ±(t−1)^c)        (c = clip_exponent; no clamp when off)
///            m ← m + (1−β1)·(n − m)
///            p ← p − γλ·p (decouple)     p ← p − γ·m
///            v ← β2·v + (1−β2)·g²
///   g ← ±g + λ·p beforehand unless `decouple`.
///
/// The clip bound follows the reference code's step count (it starts at 1 on the first update);
/// pytorch-optimizer's ADOPT uses t, one step later.

#include <array>
#include <cmath>

#include "dlopt/core/rule.hpp"
#include "dlopt/optim/betas.hpp"

namespace dlopt {

/// The hyperparameters of ADOPT and their defaults, the same as dlopt.optim.ADOPT's in Python.
struct ADOPTConfig {
  double lr = 1e-3;  ///< γ, the learning rate
  double beta1 = 0.9;  ///< β₁, decay of the first moment (torch's betas[0])
  double beta2 = 0.9999;  ///< β₂, decay of the second moment (torch's betas[1])
  double eps = 1e-6;  ///< ε, lower bound of √v
  double weight_decay = 0.0;  ///< λ, the weight decay
  double clip_exponent = 0.25;  ///< the clip bound is step^clip_exponent (the reference's clip_lambda)
  bool clip = true;             ///< false: no clipping (clip_lambda=None)
  bool decouple = false;        ///< decoupled weight decay (AdamW-style)
  bool maximize = false;  ///< ascend: step along +g

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require_common(lr, eps, weight_decay);
    detail::require_betas(beta1, beta2);
    detail::require(std::isfinite(clip_exponent), "clip_exponent", clip_exponent, "must be finite");
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("beta1", beta1), f("beta2", beta2), f("eps", eps), f("weight_decay", weight_decay);
    f("clip_exponent", clip_exponent), f("clip", clip), f("decouple", decouple), f("maximize", maximize);
  }
};

/// The ADOPT rule (core/rule.hpp).
struct ADOPTRule : RuleDefaults {
  using Config = ADOPTConfig;  ///< its hyperparameters
  static constexpr const char* name = "ADOPT";  ///< the optimizer's name (registry, checkpoints)
  static constexpr std::array<const char*, 2> slots = {"exp_avg", "exp_avg_sq"};  ///< m and v, the reference's state keys
  /// Both slots, always.
  static bool uses_slot(const Config&, int) { return true; }
  /// m is signed; v is an average of squares.
  static SlotKind slot_kind(int k) { return k == 0 ? SlotKind::Signed : SlotKind::NonNegative; }

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T lr;               ///< γ
    T one_minus_beta1;  ///< 1 − β₁
    T beta2;            ///< β₂
    T one_minus_beta2;  ///< 1 − β₂
    T eps;              ///< ε
    T l2;               ///< λ added to the gradient; 0 with decouple
    T neg_decay;        ///< −γλ with decouple (p ← p − γλ·p), else 0
    T clip;             ///< the clip bound (t−1)^c; +∞ without clipping
    T sign;             ///< −1 to maximize, else 1
    T first;  ///< 1 on the first step, else 0 (a T, not a bool: GCC 12 vectorizes selects on a
              ///< loop-invariant float compare, not on a bool copied out of this struct)
  };
  /// The clip bound of step t, the first-step flag, and the weight decay in its L2 or decoupled form.
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars& s) {
    const bool first = s.step == 1;
    const double bound = c.clip ? std::pow(double(s.step - 1), c.clip_exponent) : INFINITY;
    return {T(c.lr),
            T(1 - c.beta1),
            T(c.beta2),
            T(1 - c.beta2),
            T(c.eps),
            T(c.decouple ? 0.0 : c.weight_decay),
            T(c.decouple ? -c.lr * c.weight_decay : 0.0),
            T(bound),
            T(c.maximize ? -1 : 1),
            T(first ? 1 : 0)};
  }

  /// Element i's step, the formulas of the file comment (the CPU loop and the CUDA kernel both call it).
  template <class T>
  DLOPT_HD static void update(const Coeffs<T>& c, int64_t i, T* p, const T* g, T* const* s) {
    const T param = p[i], m = s[0][i], v = s[1][i];
    T grad = c.sign * g[i];
    if (c.l2 != T(0)) grad += c.l2 * param;
    const T normed = detail::clamp(grad / detail::max(std::sqrt(v), c.eps), -c.clip, c.clip);
    const T new_m = detail::lerp(m, normed, c.one_minus_beta1);
    const T new_p = (param + c.neg_decay * param) - c.lr * new_m;
    // The first step only sets v (written as selects, not an early return, so the loop vectorizes)
    const bool first = c.first != T(0);
    s[0][i] = first ? m : new_m;
    p[i] = first ? param : new_p;
    s[1][i] = first ? v + grad * grad : v * c.beta2 + c.one_minus_beta2 * grad * grad;
  }
};

}  // namespace dlopt
