#pragma once
/// @file schedule_free.hpp
/// Schedule-Free SGD and AdamW (Defazio et al., 2024), as the `schedulefree` package (1.4): no
/// learning-rate schedule; the step is taken at y, an interpolation between the SGD/Adam iterate z
/// and the running average x of the z's, weighted by c = w_t / Σw:
///
///   w_t = t^r · (γ_max)^p      (γ_t = γ·min(1, t/warmup_steps), γ_max = max over steps; p = weight_lr_power)
///   AdamW:  v ← β2·v + (1−β2)·g²,   d ← g / (√(v/(1−β2ᵗ)) + ε) + λ·y
///   SGD:    d ← g + λ·y
///   y ← lerp(y, z, c) + γ_t·(β(1−c) − 1)·d      z ← z − γ_t·d      (β = β1, or momentum)
///
/// The parameter holds y while training. `eval()` moves it to the average x (x = lerp(y, z, 1 − 1/β))
/// and `train()` back (y = lerp(x, z, 1 − β)): `mode_weight` and `move` below, the one switch of
/// Optimizer::train / eval (C++, the linear models), Python's train() / eval() on host and device
/// arrays and the CUDA kernel (cuda/schedule_free.cu). The mode is Python's param group key
/// "train_mode" and OptimizerState::train_mode. z starts as a copy of the parameter (taken in the first step). The
/// weighting (Σw, γ_max) is kept per tensor, as dlopt keeps every step count (the package keeps
/// it per param group: the same unless a tensor skips steps with a None gradient).

#include <algorithm>
#include <array>
#include <cmath>

#include "dlopt/core/rule.hpp"
#include "dlopt/optim/betas.hpp"

namespace dlopt {

/// The hyperparameters of the warmup and of the averaging weights cₜ = wₜ / Σ wₛ, wₜ = tʳ · γ_maxᵖ,
/// shared by both Schedule-Free rules.
struct ScheduleFreeWeighting {
  double warmup_steps = 0;       ///< steps of linear learning-rate warmup
  double r = 0.0;                ///< r, the power of t in the weights
  double weight_lr_power = 2.0;  ///< p, the power of the learning rate in the weights

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require(warmup_steps >= 0, "warmup_steps", warmup_steps, "must be >= 0");
    detail::require(std::isfinite(r), "r", r, "must be finite");
    detail::require(std::isfinite(weight_lr_power), "weight_lr_power", weight_lr_power, "must be finite");
  }
  /// Calls f(name, field) for every field (the variants' visit calls it after their own).
  template <class F>
  void visit(F&& f) {
    f("warmup_steps", warmup_steps), f("r", r), f("weight_lr_power", weight_lr_power);
  }
};

/// The hyperparameters of ScheduleFreeSGD and their defaults, the same as dlopt.optim.ScheduleFreeSGD's in Python.
struct ScheduleFreeSGDConfig : ScheduleFreeWeighting {
  double lr = 1.0;  ///< γ, the learning rate
  double momentum = 0.9;  ///< μ, the interpolation between the average and the iterate
  double weight_decay = 0.0;  ///< λ, the weight decay

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require(lr >= 0, "lr", lr, "must be >= 0");
    detail::require(momentum > 0 && momentum < 1, "momentum", momentum, "must be in (0, 1)");
    detail::require(weight_decay >= 0, "weight_decay", weight_decay, "must be >= 0");
    ScheduleFreeWeighting::validate();
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("momentum", momentum), f("weight_decay", weight_decay);
    ScheduleFreeWeighting::visit(f);
  }
  /// β of the interpolation: the momentum.
  double beta() const { return momentum; }
};

/// The hyperparameters of ScheduleFreeAdamW and their defaults, the same as dlopt.optim.ScheduleFreeAdamW's in Python.
struct ScheduleFreeAdamWConfig : ScheduleFreeWeighting {
  double lr = 0.0025;  ///< γ, the learning rate
  double beta1 = 0.9;  ///< β₁, the interpolation between the average and the iterate
  double beta2 = 0.999;  ///< β₂, decay of the second moment (torch's betas[1])
  double eps = 1e-8;  ///< ε, added to the denominator
  double weight_decay = 0.0;  ///< λ, the weight decay

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require_common(lr, eps, weight_decay);
    detail::require_betas(beta1, beta2);
    ScheduleFreeWeighting::validate();
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("beta1", beta1), f("beta2", beta2), f("eps", eps), f("weight_decay", weight_decay);
    ScheduleFreeWeighting::visit(f);
  }
  /// β of the interpolation: β₁.
  double beta() const { return beta1; }
};

/// The weighting and the interpolation, shared by both rules: scalars (Σw, γ_max) and the
/// per-step coefficients; `Rule::direction` is what differs.
template <class Config_>
struct ScheduleFreeBase : RuleDefaults {
  using Config = Config_;  ///< the variant's hyperparameters
  static constexpr std::array<const char*, 2> scalars = {"weight_sum", "lr_max"};  ///< Σw and γ_max, the package's keys
  /// Σw starts at 0; γ_max at −1, below any learning rate, as the package's.
  static double scalar_init(const Config&, int k) { return k == 0 ? 0.0 : -1.0; }

  /// γₜ = γ·min(1, t/warmup_steps) of step t (1-based).
  static double scheduled_lr(const Config& c, double t) {
    return c.lr * (t - 1 < c.warmup_steps ? t / c.warmup_steps : 1.0);
  }
  /// wₜ = tʳ · γ_maxᵖ.
  static double weight(const Config& c, double t, double lr_max) {
    return std::pow(t, c.r) * std::pow(lr_max, c.weight_lr_power);
  }
  /// γ_max ← max(γ_max, γₜ), then Σw ← Σw + wₜ (the weight of this step's iterate counts in cₜ).
  static void advance(const Config& c, TensorScalars& s) {
    const double t = double(s.step);
    s.value[1] = std::max(scheduled_lr(c, t), s.value[1]);
    s.value[0] += weight(c, t, s.value[1]);
  }

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T lr;                ///< γₜ
    T ckp1;              ///< c = wₜ / Σw (the package's ckp1)
    T y_step;            ///< γₜ·(β(1−c) − 1), the weight of d in y's update
    T weight_decay;      ///< λ
    T beta2;             ///< β₂ (AdamW only)
    T one_minus_beta2;   ///< 1 − β₂ (AdamW only)
    T bias_correction2;  ///< 1 − β₂ᵗ (AdamW only)
    T eps;               ///< ε (AdamW only)
    bool first;          ///< z ← y before the step
  };
  /// The scalars both variants share: γₜ, c and y's step weight of step t.
  template <class T>
  static Coeffs<T> schedule(const Config& c, const TensorScalars& s) {
    const double t = double(s.step), lr = scheduled_lr(c, t), sum = s.value[0];
    const double ckp1 = sum != 0 ? weight(c, t, s.value[1]) / sum : 0.0;
    return {T(lr), T(ckp1), T(lr * (c.beta() * (1 - ckp1) - 1)), T(c.weight_decay), T(0), T(0), T(1), T(0),
            s.step == 1};
  }

  /// The train / eval switch: p ← lerp(p, z, w) with w = mode_weight(config, to_train), for every
  /// tensor that has stepped (before the first step y = x = z: nothing to move).
  static constexpr bool has_modes = true;
  /// w of the switch: 1 − β to train (x → y = (1 − β)·z + β·x), 1 − 1/β to eval (y → x).
  static double mode_weight(const Config& c, bool to_train) { return to_train ? 1 - c.beta() : 1 - 1 / c.beta(); }
  /// p[i] ← lerp(p[i], z[i], w): one element of the switch (the CPU loop and the CUDA kernel).
  template <class T>
  DLOPT_HD static void move(int64_t i, T* p, const T* z, T w) { p[i] = detail::lerp(p[i], z[i], w); }

  /// Slot 0 is z (kept in the compute type: it is a parameter iterate, not a statistic).
  static SlotKind slot_kind(int k) { return k == 0 ? SlotKind::Wide : SlotKind::NonNegative; }
  /// Every slot, always.
  static bool uses_slot(const Config&, int) { return true; }

  /// Element i given its direction d: y ← lerp(y, z, c) + γₜ·(β(1−c) − 1)·d, z ← z − γₜ·d.
  template <class T>
  DLOPT_HD static void step_y_z(const Coeffs<T>& c, int64_t i, T* p, T d, T* z) {
    const T y = p[i], z0 = c.first ? y : z[i];
    p[i] = detail::lerp(y, z0, c.ckp1) + c.y_step * d;
    z[i] = z0 - c.lr * d;
  }
};

/// The Schedule-Free SGD rule (core/rule.hpp): d = g + λ·y.
struct ScheduleFreeSGDRule : ScheduleFreeBase<ScheduleFreeSGDConfig> {
  static constexpr const char* name = "ScheduleFreeSGD";  ///< the optimizer's name (registry, checkpoints)
  static constexpr std::array<const char*, 1> slots = {"z"};  ///< z, the SGD iterate
  /// The shared schedule; SGD needs nothing more.
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars& s) { return schedule<T>(c, s); }

  /// Element i: d = g + λ·y, then y and z.
  template <class T>
  DLOPT_HD static void update(const Coeffs<T>& c, int64_t i, T* p, const T* g, T* const* s) {
    T d = g[i];
    if (c.weight_decay != T(0)) d += c.weight_decay * p[i];
    step_y_z(c, i, p, d, s[0]);
  }
};

/// The Schedule-Free AdamW rule (core/rule.hpp): d = g / (√(v/(1−β₂ᵗ)) + ε) + λ·y.
struct ScheduleFreeAdamWRule : ScheduleFreeBase<ScheduleFreeAdamWConfig> {
  static constexpr const char* name = "ScheduleFreeAdamW";  ///< the optimizer's name (registry, checkpoints)
  static constexpr std::array<const char*, 2> slots = {"z", "exp_avg_sq"};  ///< z (the Adam iterate) and v
  /// The shared schedule plus v's decay and bias correction.
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars& s) {
    Coeffs<T> k = schedule<T>(c, s);
    k.beta2 = T(c.beta2), k.one_minus_beta2 = T(1 - c.beta2), k.eps = T(c.eps);
    k.bias_correction2 = T(1 - std::pow(c.beta2, double(s.step)));
    return k;
  }

  /// Element i: v, d, then y and z.
  template <class T>
  DLOPT_HD static void update(const Coeffs<T>& c, int64_t i, T* p, const T* g, T* const* s) {
    const T grad = g[i];
    const T v = s[1][i] = s[1][i] * c.beta2 + c.one_minus_beta2 * grad * grad;
    T d = grad / (std::sqrt(v / c.bias_correction2) + c.eps);
    if (c.weight_decay != T(0)) d += c.weight_decay * p[i];
    step_y_z(c, i, p, d, s[0]);
  }
};

}  // namespace dlopt
