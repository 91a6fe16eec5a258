#pragma once
/// @file rule.hpp
/// The contract every optimizer implements, and the per-tensor host state it keeps.
///
/// An optimizer is a *rule*: a stateless struct with
///   - `Config`: hyperparameters with PyTorch's defaults, `validate()`, and `visit(f)` over its fields;
///   - `slots`: the names of its per-element state buffers (PyTorch's state keys), and
///     `uses_slot(config, k)` / `slot_init(config, k)` saying which exist and how they start;
///   - `Coeffs<T>` and `coeffs(config, scalars)`: the per-step scalars, computed once on the host in
///     double precision after `scalars.step` has been advanced;
///   - `update(coeffs, i, p, g, s)`: the elementwise maths, a DLOPT_HD function and the only place
///     the algorithm is written. The CPU loop and the CUDA kernel both call it.

#include <cstdint>

#include "dlopt/core/device.hpp"
#include "dlopt/core/error.hpp"
#include "dlopt/core/storage.hpp"

namespace dlopt {

/// Host-side scalar state of one parameter tensor (serialized with the optimizer state).
struct TensorScalars {
  int64_t step = 0;         ///< steps taken by this tensor (PyTorch's state["step"])
  double mu_product = 1.0;  ///< NAdam's running product of momentum coefficients
};

/// Defaults shared by rules; a rule overrides what it needs.
struct RuleDefaults {
  static constexpr bool tracks_mu_product = false;
  template <class Config>
  static double slot_init(const Config&, int /*slot*/) { return 0.0; }
  /// What slot k holds, which decides the storage it may take (core/storage.hpp).
  static SlotKind slot_kind(int /*slot*/) { return SlotKind::Signed; }
};

}  // namespace dlopt
