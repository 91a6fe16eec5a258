#pragma once
/// @file adagrad.hpp
/// Adagrad (Duchi et al., 2011), as in torch.optim.Adagrad:
///
///   γ̃ ← γ / (1 + (t−1)·η)            g ← ±g + λ·p
///   s ← s + g²                        p ← p − γ̃ · g / (√s + ε)

#include <array>
#include <cmath>

#include "dlopt/optim/betas.hpp"
#include "dlopt/core/rule.hpp"

namespace dlopt {

/// The hyperparameters of Adagrad and their defaults, the same as dlopt.optim.Adagrad's in Python.
struct AdagradConfig {
  double lr = 1e-2;  ///< γ, the learning rate
  double lr_decay = 0.0;                   ///< η
  double weight_decay = 0.0;  ///< λ, the weight decay
  double initial_accumulator_value = 0.0;  ///< starting value of s
  double eps = 1e-10;  ///< ε, added to the denominator
  bool maximize = false;  ///< ascend: step along +g

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require_common(lr, eps, weight_decay);
    detail::require(lr_decay >= 0, "lr_decay", lr_decay, "must be >= 0");
    detail::require(initial_accumulator_value >= 0, "initial_accumulator_value",
                    initial_accumulator_value, "must be >= 0");
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("lr_decay", lr_decay), f("weight_decay", weight_decay);
    f("initial_accumulator_value", initial_accumulator_value), f("eps", eps);
    f("maximize", maximize);
  }
};

/// The Adagrad rule (core/rule.hpp).
struct AdagradRule : RuleDefaults {
  using Config = AdagradConfig;  ///< its hyperparameters
  static constexpr const char* name = "Adagrad";  ///< the optimizer's name (registry, checkpoints)
  static constexpr std::array<const char*, 1> slots = {"sum"};  ///< s, the sum of g², torch's state key
  /// The sum, always.
  static bool uses_slot(const Config&, int) { return true; }
  /// The sum only grows: a 16- or 8-bit format would round small squared gradients away.
  static SlotKind slot_kind(int) { return SlotKind::Wide; }
  /// s starts at initial_accumulator_value.
  static double slot_init(const Config& c, int) { return c.initial_accumulator_value; }

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T clr;           ///< γ̃ = γ / (1 + (t−1)·η), the decayed learning rate
    T eps;           ///< ε
    T weight_decay;  ///< λ
    T sign;          ///< −1 to maximize, else 1
  };
  /// γ̃ of step t and the config as T.
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars& s) {
    return {T(c.lr / (1 + double(s.step - 1) * c.lr_decay)), T(c.eps), T(c.weight_decay),
            T(c.maximize ? -1 : 1)};
  }

  /// Element i: s ← s + g², p ← p − γ̃·g/(√s + ε).
  template <class T>
  DLOPT_HD static void update(const Coeffs<T>& c, int64_t i, T* p, const T* g, T* const* s) {
    T grad = c.sign * g[i];
    if (c.weight_decay != T(0)) grad += c.weight_decay * p[i];
    T sum = s[0][i] + grad * grad;
    s[0][i] = sum;
    p[i] -= c.clr * (grad / (std::sqrt(sum) + c.eps));
  }
};

}  // namespace dlopt
