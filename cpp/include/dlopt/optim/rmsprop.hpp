#pragma once
/// @file rmsprop.hpp
/// RMSprop (Hinton, Lecture 6e; centered variant from Graves, 2013), as in torch.optim.RMSprop:
///
///   g ← ±g + λ·p                      v ← α·v + (1−α)·g²
///   ḡ ← ḡ + (1−α)·(g − ḡ), d ← √(v − ḡ²) + ε   (centered)   or   d ← √v + ε
///   b ← μ·b + g/d, p ← p − γ·b        (momentum > 0)        or   p ← p − γ·g/d

#include <array>
#include <cmath>

#include "dlopt/optim/betas.hpp"
#include "dlopt/core/rule.hpp"

namespace dlopt {

/// The hyperparameters of RMSprop and their defaults, the same as dlopt.optim.RMSprop's in Python.
struct RMSpropConfig {
  double lr = 1e-2;  ///< γ, the learning rate
  double alpha = 0.99;  ///< smoothing constant
  double eps = 1e-8;  ///< ε, added to the denominator
  double weight_decay = 0.0;  ///< λ, the weight decay
  double momentum = 0.0;  ///< μ, the momentum factor
  bool centered = false;  ///< normalize by the centered second moment
  bool maximize = false;  ///< ascend: step along +g

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require_common(lr, eps, weight_decay);
    detail::require(momentum >= 0, "momentum", momentum, "must be >= 0");
    detail::require(alpha >= 0, "alpha", alpha, "must be >= 0");
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("alpha", alpha), f("eps", eps), f("weight_decay", weight_decay);
    f("momentum", momentum), f("centered", centered), f("maximize", maximize);
  }
};

/// The RMSprop rule (core/rule.hpp).
struct RMSpropRule : RuleDefaults {
  using Config = RMSpropConfig;  ///< its hyperparameters
  static constexpr const char* name = "RMSprop";  ///< the optimizer's name (registry, checkpoints)
  /// v, b and ḡ, torch's state keys.
  static constexpr std::array<const char*, 3> slots = {"square_avg", "momentum_buffer", "grad_avg"};
  /// v always; b only with momentum > 0; ḡ only when centered.
  static bool uses_slot(const Config& c, int k) {
    return k == 0 || (k == 1 && c.momentum > 0) || (k == 2 && c.centered);
  }
  /// v is an average of squares; b and ḡ are signed.
  static SlotKind slot_kind(int k) { return k == 0 ? SlotKind::NonNegative : SlotKind::Signed; }

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T lr;               ///< γ
    T alpha;            ///< α
    T one_minus_alpha;  ///< 1 − α
    T eps;              ///< ε
    T weight_decay;     ///< λ
    T momentum;         ///< μ
    T sign;             ///< −1 to maximize, else 1
    bool centered;      ///< subtract ḡ² from v
  };
  /// The config as T (nothing depends on the step).
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars&) {
    return {T(c.lr),           T(c.alpha),    T(1 - c.alpha),         T(c.eps),
            T(c.weight_decay), T(c.momentum), T(c.maximize ? -1 : 1), c.centered};
  }

  /// Element i's step, the formulas of the file comment (the CPU loop and the CUDA kernel both call it).
  template <class T>
  DLOPT_HD static void update(const Coeffs<T>& c, int64_t i, T* p, const T* g, T* const* s) {
    T grad = c.sign * g[i];
    if (c.weight_decay != T(0)) grad += c.weight_decay * p[i];
    T v = c.alpha * s[0][i] + c.one_minus_alpha * grad * grad;
    s[0][i] = v;
    if (c.centered) {
      T gbar = s[2][i] + c.one_minus_alpha * (grad - s[2][i]);
      s[2][i] = gbar;
      v -= gbar * gbar;
    }
    T denom = std::sqrt(v) + c.eps;
    if (c.momentum > T(0)) {
      T buf = c.momentum * s[1][i] + grad / denom;
      s[1][i] = buf;
      p[i] -= c.lr * buf;
    } else {
      p[i] -= c.lr * (grad / denom);
    }
  }
};

}  // namespace dlopt
