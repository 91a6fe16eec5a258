#pragma once
// The one fit loop of the linear models, for every device: the validation split, the epochs with
// their scheduled lr, the plateau rule and early stopping, the callback, and the rollback with its
// message when the loss diverges. A device (the CPU LinearModel, the CUDA LinearTrainer) supplies
// only what differs: its epoch (the batches' forward, gradient and optimizer steps), its score, and
// how its parameters are saved and restored.

#include <cstdint>
#include <string>
#include <vector>

#include "dlopt/models/linear.hpp"

namespace dlopt::detail {

/// What the fit loop asks of a device.
template <class T>
class FitBackend {
 public:
  virtual ~FitBackend() = default;
  /// Creates the optimizer, or updates the current one's hyperparameters from the config.
  virtual void ensure_optimizer() = 0;
  virtual void reset_optimizer() = 0;
  virtual void set_lr(double lr) = 0;
  /// The optimizer's train / eval switch (AnyOptimizer::train / eval: Schedule-Free moves the
  /// parameters between y and the average x; a no-op for other optimizers or without one).
  virtual void set_train_mode(bool train) = 0;
  /// One epoch over `rows` (row indices, reshuffled in place as epoch_order says; empty: every
  /// row in order); returns the mean training loss plus the penalty, or throws NonFinite.
  virtual double epoch(std::vector<uint32_t>& rows) = 0;
  /// Early stopping's score (validation_score) of the current parameters on `rows`.
  virtual double score(const std::vector<uint32_t>& rows) = 0;
  /// The parameters (coef, then intercept) into / from host memory.
  virtual void save(std::vector<T>& params) = 0;
  virtual void restore(const std::vector<T>& params) = 0;
  /// After a divergence: nonfinite_cell of X, or "" when X is finite.
  virtual std::string bad_input() = 0;
};

/// Host copies of the targets and weights (the validation split reads them).
template <class T>
struct Targets {
  const T* y;
  const T* sample_weight;
  int64_t n;
};

/// Trains for up to config.epochs epochs (config already validated, data already checked) and
/// returns the epochs run. On a diverged loss: the parameters are restored, the optimizer reset, the
/// curves left as before, and InvalidArgument explains.
template <class T>
int64_t fit_loop(FitBackend<T>& device, const TrainConfig& config, Objective objective, int64_t n_outputs,
                 const Targets<T>& data, FitHistory& history, const EpochCallback& callback);

}  // namespace dlopt::detail
