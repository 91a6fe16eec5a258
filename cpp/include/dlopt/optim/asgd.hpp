#pragma once
/// @file asgd.hpp
/// Averaged SGD (Polyak & Juditsky, 1992) with the decaying step of Bottou (2012), as
/// torch.optim.ASGD. Per tensor, host scalars η (step size) and μ (averaging weight):
///
///   g ← ±g + λ_wd·p
///   p ← p·(1 − λη) − η·g
///   a ← p  (μ = 1)   or   a ← a + μ·(p − a)
///   then, for the next step:  η ← γ / (1 + λγt)^α,  μ ← 1 / max(1, t − t₀)
///
/// As torch, η and μ are updated *after* the step with this step's lr (`advance_after_coeffs`).

#include <algorithm>
#include <array>
#include <cmath>

#include "dlopt/core/rule.hpp"

namespace dlopt {

/// The hyperparameters of ASGD and their defaults, the same as dlopt.optim.ASGD's in Python.
struct ASGDConfig {
  double lr = 1e-2;            ///< γ
  double lambd = 1e-4;         ///< λ, decay term
  double alpha = 0.75;         ///< power of the η update
  double t0 = 1e6;             ///< the step at which averaging starts
  double weight_decay = 0.0;   ///< λ_wd (L2 penalty added to the gradient)
  bool maximize = false;  ///< ascend: step along +g

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require(lr >= 0, "lr", lr, "must be >= 0");
    detail::require(weight_decay >= 0, "weight_decay", weight_decay, "must be >= 0");
    detail::require(std::isfinite(lambd), "lambd", lambd, "must be finite");
    detail::require(std::isfinite(alpha), "alpha", alpha, "must be finite");
    detail::require(t0 == t0, "t0", t0, "must not be NaN");
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("lambd", lambd), f("alpha", alpha), f("t0", t0);
    f("weight_decay", weight_decay), f("maximize", maximize);
  }
};

/// The ASGD rule (core/rule.hpp).
struct ASGDRule : RuleDefaults {
  using Config = ASGDConfig;  ///< its hyperparameters
  static constexpr const char* name = "ASGD";  ///< the optimizer's name (registry, checkpoints)
  static constexpr std::array<const char*, 1> slots = {"ax"};  ///< a, the average of the iterates
  /// The average, always.
  static bool uses_slot(const Config&, int) { return true; }
  static constexpr std::array<const char*, 2> scalars = {"eta", "mu"};  ///< η and μ, torch's state keys
  /// η₀ = γ, μ₀ = 1.
  static double scalar_init(const Config& c, int k) { return k == 0 ? c.lr : 1.0; }
  /// As torch, η and μ are updated after the step: the scalars hold what the next step uses.
  static constexpr bool advance_after_coeffs = true;
  /// η ← γ / (1 + λγt)^α,  μ ← 1 / max(1, t − t₀).
  static void advance(const Config& c, TensorScalars& s) {
    const double t = double(s.step);
    s.value[0] = c.lr / std::pow(1 + c.lambd * c.lr * t, c.alpha);
    s.value[1] = 1 / std::max(1.0, t - c.t0);
  }

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T decay;         ///< 1 − λη
    T eta;           ///< η
    T mu;            ///< μ
    T weight_decay;  ///< λ_wd
    T sign;          ///< −1 to maximize, else 1
    bool copy;  ///< μ = 1: the average is the parameter itself (torch copies it)
  };
  /// This step's η and μ (advanced after the previous step) and the config as T.
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars& s) {
    const double eta = s.value[0], mu = s.value[1];
    return {T(1 - c.lambd * eta), T(eta), T(mu), T(c.weight_decay), T(c.maximize ? -1 : 1), mu == 1};
  }

  /// Element i's step, the formulas of the file comment (the CPU loop and the CUDA kernel both call it).
  template <class T>
  DLOPT_HD static void update(const Coeffs<T>& c, int64_t i, T* p, const T* g, T* const* s) {
    T grad = c.sign * g[i];
    if (c.weight_decay != T(0)) grad += c.weight_decay * p[i];
    const T param = p[i] * c.decay - c.eta * grad;
    p[i] = param;
    s[0][i] = c.copy ? param : s[0][i] + (param - s[0][i]) * c.mu;
  }
};

}  // namespace dlopt
