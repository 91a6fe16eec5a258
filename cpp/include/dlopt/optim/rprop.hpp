#pragma once
/// @file rprop.hpp
/// Rprop, resilient backpropagation (Riedmiller & Braun, 1993), as torch.optim.Rprop: each element
/// keeps its own step size, grown while the gradient keeps its sign and shrunk when it flips.
///
///   s ← sign(±g · g_prev)
///   η ← η₊ (s > 0),  η₋ (s < 0),  1 (s = 0)
///   Δ ← clamp(Δ·η, Δ_min, Δ_max)
///   g ← 0 where η = η₋  (a sign flip: no move, and the next step sees no previous sign)
///   p ← p − sign(g)·Δ,  g_prev ← g
///
/// `lr` is only the initial step size Δ (torch's state["step_size"] starts at lr).

#include <array>

#include "dlopt/core/rule.hpp"

namespace dlopt {

/// The hyperparameters of Rprop and their defaults, the same as dlopt.optim.Rprop's in Python.
struct RpropConfig {
  double lr = 1e-2;             ///< initial Δ
  double etaminus = 0.5;        ///< η₋ (torch's etas[0])
  double etaplus = 1.2;         ///< η₊ (torch's etas[1])
  double step_size_min = 1e-6;  ///< Δ_min (torch's step_sizes[0])
  double step_size_max = 50;    ///< Δ_max (torch's step_sizes[1])
  bool maximize = false;  ///< ascend: step along +g

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require(lr >= 0, "lr", lr, "must be >= 0");
    detail::require(etaminus > 0 && etaminus < 1, "etas[0]", etaminus, "must be in (0, 1)");
    detail::require(etaplus > 1, "etas[1]", etaplus, "must be > 1");
    detail::require(step_size_min >= 0, "step_sizes[0]", step_size_min, "must be >= 0");
    detail::require(step_size_max >= step_size_min, "step_sizes[1]", step_size_max, "must be >= step_sizes[0]");
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("etaminus", etaminus), f("etaplus", etaplus);
    f("step_size_min", step_size_min), f("step_size_max", step_size_max), f("maximize", maximize);
  }
};

/// The Rprop rule (core/rule.hpp).
struct RpropRule : RuleDefaults {
  using Config = RpropConfig;  ///< its hyperparameters
  static constexpr const char* name = "Rprop";  ///< the optimizer's name (registry, checkpoints)
  /// g_prev and each element's Δ, torch's state keys.
  static constexpr std::array<const char*, 2> slots = {"prev", "step_size"};
  /// Both slots, always.
  static bool uses_slot(const Config&, int) { return true; }
  /// g_prev starts at 0 (no previous sign), Δ at lr.
  static double slot_init(const Config& c, int k) { return k == 1 ? c.lr : 0.0; }
  /// Step sizes span Δ_min..Δ_max (1e-6..50 by default) element by element: a block-scaled 8-bit
  /// code would flush the small ones, so they stay in the compute type.
  static SlotKind slot_kind(int k) { return k == 0 ? SlotKind::Signed : SlotKind::Wide; }

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T etaminus;       ///< η₋
    T etaplus;        ///< η₊
    T step_size_min;  ///< Δ_min
    T step_size_max;  ///< Δ_max
    T sign;           ///< −1 to maximize, else 1
  };
  /// The config as T (nothing depends on the step).
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars&) {
    return {T(c.etaminus), T(c.etaplus), T(c.step_size_min), T(c.step_size_max), T(c.maximize ? -1 : 1)};
  }

  /// Element i's step, the formulas of the file comment (the CPU loop and the CUDA kernel both call it).
  template <class T>
  DLOPT_HD static void update(const Coeffs<T>& c, int64_t i, T* p, const T* g, T* const* s) {
    const T grad = c.sign * g[i];
    const T product = grad * s[0][i];
    // torch assigns η by the sign of the product (a NaN product keeps NaN, and so does Δ) and zeroes
    // the gradient where η = η₋, i.e. where the product is negative.
    const bool grows = product > T(0), shrinks = product < T(0), keeps = product == T(0);
    const T eta = grows ? c.etaplus : shrinks ? c.etaminus : keeps ? T(1) : product;
    const T step_size = detail::clamp(s[1][i] * eta, c.step_size_min, c.step_size_max);
    const T kept = shrinks ? T(0) : grad;
    s[1][i] = step_size;
    s[0][i] = kept;
    p[i] -= detail::sign(kept) * step_size;
  }
};

}  // namespace dlopt
