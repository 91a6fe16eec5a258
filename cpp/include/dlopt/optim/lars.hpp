#pragma once
/// @file lars.hpp
/// LARS, layer-wise adaptive rate scaling (You et al., 2017, Algorithm 1), as pytorch-optimizer's
/// LARS (the learning rate outside the momentum, as torch.optim.SGD):
///
///   τ ← η·‖p‖ / (‖g‖ + λ‖p‖)   (1 if ‖p‖ = 0 or the denominator is 0)
///   g ← (±g + λ·p)·τ           (a "layer": any tensor unless exclude_1d and it is a vector)
///   b ← μ·b + (1−δ)·g          g ← g + μ·b (nesterov)   or   g ← b     (when μ ≠ 0)
///   p ← p − γ·g
///
/// The norms are the rule's per-tensor reductions (core/step.hpp), summed in double.
/// With exclude_1d, vectors and scalars (biases, norm layers) take plain SGD: no decay, τ = 1.

#include <array>
#include <cmath>

#include "dlopt/core/rule.hpp"

namespace dlopt {

/// The hyperparameters of LARS and their defaults, the same as dlopt.optim.LARS's in Python.
struct LARSConfig {
  double lr = 1e-3;                 ///< γ
  double momentum = 0.9;            ///< μ
  double dampening = 0.0;           ///< δ
  double weight_decay = 0.0;        ///< λ
  double trust_coefficient = 1e-3;  ///< η
  bool nesterov = false;  ///< Nesterov momentum
  bool exclude_1d = false;  ///< vectors take plain SGD (pytorch-optimizer always does this)
  bool maximize = false;  ///< ascend: step along +g

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require(lr >= 0, "lr", lr, "must be >= 0");
    detail::require(momentum >= 0 && momentum <= 1, "momentum", momentum, "must be in [0, 1]");
    detail::require(dampening >= 0 && dampening <= 1, "dampening", dampening, "must be in [0, 1]");
    detail::require(weight_decay >= 0, "weight_decay", weight_decay, "must be >= 0");
    detail::require(trust_coefficient >= 0, "trust_coefficient", trust_coefficient, "must be >= 0");
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("momentum", momentum), f("dampening", dampening), f("weight_decay", weight_decay);
    f("trust_coefficient", trust_coefficient), f("nesterov", nesterov), f("exclude_1d", exclude_1d);
    f("maximize", maximize);
  }
};

/// The LARS rule (core/rule.hpp): a reduction pass for the norms, then the elementwise update.
struct LARSRule : RuleDefaults {
  using Config = LARSConfig;  ///< its hyperparameters
  static constexpr const char* name = "LARS";  ///< the optimizer's name (registry, checkpoints)
  static constexpr std::array<const char*, 1> slots = {"momentum_buffer"};  ///< b
  /// The momentum buffer exists only with momentum (μ ≠ 0).
  static bool uses_slot(const Config& c, int) { return c.momentum != 0; }
  static constexpr int reductions = 2;  ///< Σp², Σg²

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T lr;                      ///< γ
    T momentum;                ///< μ
    T one_minus_dampening;     ///< 1 − δ
    T sign;                    ///< −1 to maximize, else 1
    T weight_decay;            ///< λ for this tensor, set by finish (0 for a vector under exclude_1d)
    T trust;                   ///< τ, set by finish (1 until then)
    double decay;              ///< λ of the config, for finish
    double trust_coefficient;  ///< η, for finish
    bool nesterov;             ///< step along g + μ·b instead of b
    bool exclude_1d;           ///< vectors take plain SGD
  };
  /// The config as T; τ and the tensor's λ wait for finish.
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars&) {
    return {T(c.lr), T(c.momentum), T(1 - c.dampening), T(c.maximize ? -1 : 1), T(0), T(1),
            c.weight_decay, c.trust_coefficient, c.nesterov, c.exclude_1d};
  }

  /// Element i's terms of the sums: p² and g².
  template <class T>
  DLOPT_HD static std::array<double, reductions> reduce(const Coeffs<T>&, int64_t i, const T* p, const T* g,
                                                        T* const*) {
    return {double(p[i]) * double(p[i]), double(g[i]) * double(g[i])};
  }

  /// τ and λ from the tensor's sums (host, or the GPU after its reduction: sqrt and division round the same); a vector under exclude_1d keeps τ = 1, λ = 0.
  template <class T>
  DLOPT_HD static void finish(Coeffs<T>& c, const double* sums, int64_t rows) {
    if (c.exclude_1d && rows == 0) return;
    const double p_norm = std::sqrt(sums[0]), denom = std::sqrt(sums[1]) + c.decay * p_norm;
    c.trust = T(p_norm > 0 && denom > 0 ? c.trust_coefficient * p_norm / denom : 1.0);
    c.weight_decay = T(c.decay);
  }

  /// Element i: the scaled gradient, the momentum buffer and p ← p − γ·g.
  template <class T>
  DLOPT_HD static void update(const Coeffs<T>& c, int64_t i, T* p, const T* g, T* const* s) {
    T grad = (c.sign * g[i] + c.weight_decay * p[i]) * c.trust;
    if (c.momentum != T(0)) {
      T& buf = s[0][i];
      buf = c.momentum * buf + c.one_minus_dampening * grad;
      grad = c.nesterov ? grad + c.momentum * buf : buf;
    }
    p[i] -= c.lr * grad;
  }
};

}  // namespace dlopt
