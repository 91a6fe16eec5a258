#pragma once
/// @file cuda/linear.hpp
/// Linear, logistic and softmax regression trained on a CUDA device: the GPU counterpart of
/// dlopt::LinearModel (models/linear.hpp), with the same objectives, penalties, optimizers, learning-
/// rate schedules and batches. In a build without CUDA every entry point throws dlopt::NotCompiled.
///
/// X, y, sample_weight, coef and intercept are device pointers of the current device (X read in
/// place; coef / intercept updated in place). Per epoch the host shuffles the rows with the CPU
/// model's RNG (the same seed gives both backends the same batches), uploads the row order once,
/// enqueues one launch sequence per batch (forward, loss, gradient: cuda/linear.cu; the optimizer
/// step: dlopt::cuda::step) on `stream`, and reads the epoch's loss back once.
///
/// Both run the one fit loop (cpp/src/models/fit_loop.cpp), so every option, check and message is
/// the CPU model's. Differences: a non-finite loss is detected at the end of its epoch (fit then
/// restores the parameters and throws as the CPU model does). y and sample_weight are copied to the
/// host once per fit to be checked (and, for sample weights, to find batches of zero weight, whose
/// step is skipped as on the CPU); X is copied to the host only with early_stopping (the validation
/// score is computed there, as on the CPU) or to name a non-finite cell after a divergence.
///
/// @code
///   dlopt::TrainConfig cfg;  cfg.optimizer = "adam";  cfg.batch_size = 256;
///   dlopt::cuda::LinearTrainer<float> model(dlopt::Objective::Logistic, d, 1, d_coef, d_b, cfg, stream);
///   model.fit({d_X, n, d, d_y});   // device pointers; returns when the last epoch is done
/// @endcode

#include <cstdint>
#include <memory>
#include <vector>

#include "dlopt/cuda/linear_kernels.hpp"
#include "dlopt/models/linear.hpp"

namespace dlopt::cuda {

/// Enqueues one batch's forward, loss and gradient launches on `stream` (internal building block
/// of LinearTrainer, exposed for tests and benchmarks).
template <class T>
void launch_batch(const detail::LinearBatch<T>& batch, void* stream);

/// What LinearTrainer<T> cannot run, refused before anything changes (InvalidArgument, the messages
/// of cuda/support.hpp): an optimizer without a CUDA step (L-BFGS, Muon, Adafactor). Every other
/// option works as on the CPU: Schedule-Free's train / eval switch (fit trains at y and leaves the
/// average x), every state_dtype (bfloat16 / int8 state kept on the device in the CPU's formats). The trainer's constructor
/// and fit call it after TrainConfig::validate; Python's _core.check_train_config(config, "cuda",
/// dtype) too, so the estimators refuse with device="cuda" before copying anything to the device.
template <class T>
void check_config(const TrainConfig& config);

/// A linear model trained on a CUDA device (float or double): LinearModel's interface over device
/// buffers (the file comment says what differs).
template <class T>
class LinearTrainer {
 public:
  using Scalar = T;  ///< the parameters' and the data's type

  /// coef (n_outputs × n_features) and intercept (n_outputs) are device buffers owned by the caller.
  LinearTrainer(Objective objective, int64_t n_features, int64_t n_outputs, T* coef, T* intercept,
                TrainConfig config = {}, void* stream = nullptr);
  ~LinearTrainer();
  LinearTrainer(const LinearTrainer&) = delete;
  LinearTrainer& operator=(const LinearTrainer&) = delete;

  /// As LinearModel::fit, on device data; synchronous (waits for the last epoch).
  int64_t fit(const DataView<T>& data, const EpochCallback& callback = {});
  /// One epoch with the current optimizer state.
  void partial_fit(const DataView<T>& data);
  /// Forgets the optimizer state (moments, step counts); the next fit starts it afresh.
  void reset_optimizer();
  /// Mean loss plus penalty on device data (as LinearModel::loss).
  double loss(const DataView<T>& data);

  /// Training loss of every epoch trained so far (as LinearModel::loss_curve).
  const std::vector<double>& loss_curve() const;
  /// Learning rate of every epoch trained so far.
  const std::vector<double>& lr_curve() const;
  /// Validation score after every epoch of the last fit with early stopping.
  const std::vector<double>& validation_scores() const;
  /// Optimizer steps taken since the last reset_optimizer().
  int64_t steps() const;
  /// The training options, changeable between fits.
  TrainConfig& config();
  /// The loss the model minimises.
  Objective objective() const;
  /// The number of features (columns of X).
  int64_t n_features() const;
  /// The number of outputs (rows of coef).
  int64_t n_outputs() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace dlopt::cuda
