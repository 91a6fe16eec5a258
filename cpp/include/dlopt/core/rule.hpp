#pragma once
/// @file rule.hpp
/// The contract every optimizer implements, and the per-tensor host state it keeps.
///
/// An optimizer is a *rule*: a stateless struct with
///   - `Config`: hyperparameters with PyTorch's defaults, `validate()`, and `visit(f)` over its fields;
///   - `slots`: the names of its per-element state buffers (PyTorch's state keys), and
///     `uses_slot(config, k)` / `slot_init(config, k)` saying which exist and how they start;
///   - `scalars` / `scalar_init(config, k)`: the names (state keys) and initial values of the
///     per-tensor host scalars it keeps besides the step count, and `advance(config, scalars)`, which
///     moves them one step on (after `step` has been incremented, and before `coeffs` — or after it
///     when `advance_after_coeffs`: scalars that hold what the *next* step uses, as ASGD's eta);
///   - `Coeffs<T>` and `coeffs(config, scalars)`: the per-step scalars, a pure function of the config
///     and the advanced host scalars, computed once on the host in double precision;
///   - optionally `reductions` (> 0), `reduce(coeffs, i, p, g, s)` and `finish(coeffs, sums, rows)`:
///     per-tensor sums the update needs (LAMB's norms): a first pass returns each element's terms,
///     the backend sums them per tensor in double in a fixed order (core/step.hpp), and `finish`
///     folds the sums into the coefficients before the elementwise pass (`rows` is the tensor's
///     leading extent when it has two or more dimensions, 0 for a vector: LARS may skip vectors);
///     both DLOPT_HD: the GPU runs them on the device, between its reduction and update kernels;
///   - `update(coeffs, i, p, g, s)`: the elementwise maths, a DLOPT_HD function and the only place
///     the algorithm is written. The CPU loop and the CUDA kernel both call it.

#include <array>
#include <cstddef>
#include <cstdint>

#include "dlopt/core/device.hpp"
#include "dlopt/core/error.hpp"
#include "dlopt/core/storage.hpp"

namespace dlopt {

/// Most per-tensor host scalars a rule may declare (besides the step count).
constexpr std::size_t kMaxScalars = 2;

/// Host-side scalar state of one parameter tensor (serialized with the optimizer state). Before a
/// tensor's first step (step == 0) `value` is reset to the rule's scalar_init, so a
/// default-constructed TensorScalars is right for every rule.
struct TensorScalars {
  int64_t step = 0;  ///< steps taken by this tensor (PyTorch's state["step"])
  std::array<double, kMaxScalars> value{};  ///< the rule's `scalars`, in order
};

/// The shape of a tensor as rules see it: `rows` is the product of all dimensions but the last (0 for
/// a vector or a scalar), `batch` the product of all but the last two (1 for a matrix): a tensor of
/// rank ≥ 2 is `batch` row-major matrices of (rows / batch) × cols.
struct TensorShape {
  int64_t size = 0;   ///< elements
  int64_t rows = 0;   ///< product of all dimensions but the last; 0 for a vector or a scalar
  int64_t batch = 1;  ///< product of all dimensions but the last two; 1 for a matrix
  /// The last dimension (the size of a vector).
  int64_t cols() const { return rows > 0 ? size / rows : size; }
};

/// What a state slot holds per tensor: one value per element (the usual), one per row or one per
/// column of each matrix (Adafactor's factored statistics, torch's shapes (..., R, 1) and
/// (..., 1, C)), or nothing for this tensor.
enum class SlotShape { Element, Rows, Cols, Unused };

/// Defaults shared by rules; a rule overrides what it needs.
struct RuleDefaults {
  static constexpr std::array<const char*, 0> scalars = {};  ///< names of the per-tensor host scalars: none
  static constexpr int reductions = 0;  ///< per-tensor sums the rule needs before its update: none
  /// A matrix rule (e.g. Muon) updates a whole 2-D tensor at once with `update_matrix(coeffs, rows,
  /// cols, p, g, s)` (matrix algebra on the host) instead of the elementwise `update`.
  static constexpr bool matrix = false;
  /// Matrix rules take 2-D parameters only (Muon), unless this is false (Adafactor: any rank).
  static constexpr bool matrix_2d = true;
  /// A matrix rule with a CUDA step of its own (cuda::has_step; cuda/step.cu's run_matrix: Adafactor,
  /// cuda/adafactor.cu; Muon, cuda/muon.cu).
  static constexpr bool device_matrix = false;
  /// True for a rule with a train and an eval mode (Schedule-Free): Optimizer::train / eval move the
  /// parameters with `mode_weight` and `move` (see schedule_free.hpp), and a step needs train mode.
  static constexpr bool has_modes = false;
  /// Slot k's shape for a tensor with `rows` rows (TensorShape; 0: a vector); Element by default.
  static SlotShape slot_shape(int /*slot*/, int64_t /*rows*/) { return SlotShape::Element; }
  /// True when `advance` runs after `coeffs`: the scalars then hold what the next step uses.
  static constexpr bool advance_after_coeffs = false;
  /// Scalar k's value before the first step.
  template <class Config>
  static double scalar_init(const Config&, int /*k*/) { return 0.0; }
  /// Updates the scalars once per step (nothing by default).
  template <class Config>
  static void advance(const Config&, TensorScalars&) {}
  /// The value slot k starts with.
  template <class Config>
  static double slot_init(const Config&, int /*slot*/) { return 0.0; }
  /// What slot k holds, which decides the storage it may take (core/storage.hpp).
  static SlotKind slot_kind(int /*slot*/) { return SlotKind::Signed; }
};

/// Elements of slot k for a tensor of shape `t`: 0 when the tensor does not use it.
template <class Rule>
int64_t slot_elements(const typename Rule::Config& c, int k, const TensorShape& t) {
  if (!Rule::uses_slot(c, k)) return 0;
  switch (Rule::slot_shape(k, t.rows)) {
    case SlotShape::Element: return t.size;
    case SlotShape::Rows: return t.rows;
    case SlotShape::Cols: return t.batch * t.cols();
    case SlotShape::Unused: break;
  }
  return 0;
}

}  // namespace dlopt
