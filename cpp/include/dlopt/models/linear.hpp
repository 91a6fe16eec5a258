#pragma once
/// @file linear.hpp
/// Linear, logistic and softmax regression trained in the C++ core by any dlopt optimizer.
///
/// A LinearModel works over parameter buffers owned by the caller (like Optimizer): `coef` is a
/// row-major `n_outputs × n_features` matrix and `intercept` has `n_outputs` entries. Data are read
/// in place through an Eigen::Map over the caller's row-major X; nothing is copied except the rows of
/// one shuffled mini-batch (see below).
///
/// Objectives (mean over the rows, or the sample-weighted mean Σ sᵢ lᵢ / Σ sᵢ):
///   - SquaredError:  lᵢ = (xᵢ·w + b − yᵢ)²                       (mean squared error, as torch's MSELoss)
///   - Logistic:      lᵢ = log(1 + e^{zᵢ}) − yᵢ zᵢ, zᵢ = xᵢ·w + b     (binary cross-entropy, yᵢ ∈ {0, 1})
///   - Softmax:       lᵢ = logsumexp(zᵢ) − z_{i,yᵢ}, zᵢ = W xᵢ + b    (cross-entropy, yᵢ a class code 0..K−1)
/// plus the penalty α·R(W) of scikit-learn's SGD estimators (the intercept is not penalised):
///   R = ½‖W‖² (L2), ‖W‖₁ (L1, by subgradient), ρ‖W‖₁ + (1−ρ)·½‖W‖² (elastic net, ρ = l1_ratio).
///
/// Training with `optimizer = "lbfgs"` is full-batch L-BFGS (dlopt/optim/lbfgs.hpp, strong-Wolfe line
/// search): one epoch is one L-BFGS iteration (see LinearModel::fit_lbfgs in linear_lbfgs.cpp).
/// Training: `batch_size == 0` is full-batch gradient descent, one optimizer step per epoch. Otherwise
/// each epoch visits the training rows in a fresh random order (a Fisher–Yates shuffle of an index
/// array, never of X, driven by splitmix64 seeded from TrainConfig::seed; each epoch permutes the
/// previous epoch's order) in mini-batches of `batch_size`. Random rows of the one-output objectives
/// are read once, straight from X, by a fused per-row pass (forward, loss and gradient in SIMD
/// registers, with prefetching); softmax rows are gathered into a small cache-resident buffer for
/// Eigen GEMV/GEMM. Without shuffling the batches are read in place. Random rows are bound by memory
/// latency: `shuffle_block = t > 1` shuffles contiguous blocks of t rows instead of single rows, so
/// every read is sequential within a block; batches still change every epoch, but rows of one block
/// always share a batch (fine for i.i.d. rows, not for sorted data).
/// Gradients are summed over fixed row partitions in a fixed order, so results do not depend on the
/// number of threads.
/// Schedule-Free (optimizer "schedulefreesgd" / "schedulefreeadamw"): fit and partial_fit take
/// their steps at y and end with the optimizer's eval(), so coef / intercept hold the average x
/// between calls (predictions, the early-stopping score); the next call starts with train().
///
/// @code
///   std::vector<double> w(3), b(1);
///   dlopt::TrainConfig cfg;  cfg.optimizer = "sgd";  cfg.lr = 0.1;
///   dlopt::LinearModel<double> model(dlopt::Objective::SquaredError, 3, 1, w.data(), b.data(), cfg);
///   model.fit({X.data(), n, 3, y.data()});
/// @endcode

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dlopt/core/error.hpp"
#include "dlopt/optim/any_optimizer.hpp"
#include "dlopt/schedule.hpp"

namespace dlopt {

/// The loss a LinearModel minimises.
enum class Objective { SquaredError, Logistic, Softmax };

/// Regularisation of the coefficients (scikit-learn's names: None, "l2", "l1", "elasticnet").
enum class Penalty { None, L2, L1, ElasticNet };

/// Parses "none" / "l2" / "l1" / "elasticnet" (case-insensitive).
Penalty parse_penalty(const std::string& name);

/// Training hyperparameters. Defaults: full-batch Adam for 1000 epochs, no plateau stopping.
struct TrainConfig {
  std::string optimizer = "adam";                  ///< a registry name or "lbfgs", any case
  double lr = 0.01;                                ///< the optimizer's learning rate
  /// Learning-rate schedule counted in epochs: epoch e (0-based, counting every epoch this model has
  /// trained, so warm starts and partial_fit continue the schedule) runs with make_schedule(lr_schedule,
  /// lr, epochs).lr(e), set on the optimizer through AnyOptimizer::set("lr", ...) before the epoch's
  /// first step. The default "constant" keeps lr. Defaults that torch leaves to the caller (T_max, ...)
  /// come from `epochs` (see make_schedule).
  ScheduleSpec lr_schedule;
  std::map<std::string, double> optimizer_params;  ///< other hyperparameters by Config field name
  StorageOptions optimizer_storage;                ///< how the optimizer stores its state (GPU: cuda::check_config)
  int64_t epochs = 1000;                           ///< passes over the training rows
  int64_t batch_size = 0;                          ///< 0: full batch; otherwise rows per step
  bool shuffle = true;                             ///< reshuffle the rows every epoch (mini-batch)
  /// Rows per shuffled block: 1 shuffles every row independently (the default); t > 1 keeps runs of
  /// t consecutive rows together and shuffles the order of these blocks, which turns the random
  /// row gather into sequential reads (see the file comment).
  int64_t shuffle_block = 1;
  uint64_t seed = 0;                               ///< shuffling and the validation split
  bool fit_intercept = true;                       ///< train an intercept (else it stays 0)
  Penalty penalty = Penalty::None;                 ///< the regularization term
  double alpha = 1e-4;     ///< penalty strength α
  double l1_ratio = 0.15;  ///< ρ of the elastic net
  /// Stop when the monitored quantity fails to improve by `tol` for `n_iter_no_change` epochs.
  /// NaN disables plateau stopping on the training loss (early stopping then uses tol = 0).
  double tol = std::numeric_limits<double>::quiet_NaN();
  int64_t n_iter_no_change = 5;  ///< epochs without improvement before stopping
  bool early_stopping = false;       ///< monitor R² / accuracy on a held-out validation split
  double validation_fraction = 0.1;  ///< size of that split
  /// Data-parallel training (dlopt.distributed): > 0 cuts each epoch's rows into exactly this many
  /// batches, batch j being rows [m·j/n, m·(j+1)/n) of the epoch's order (m rows; a batch may be
  /// empty), so every worker takes the same number of steps whatever its row count. 0: batches of
  /// batch_size rows.
  int64_t batches = 0;

  /// Throws InvalidArgument naming the first invalid field.
  void validate() const;
};

/// A data set in the caller's memory: X is C-contiguous (row-major) n_samples × n_features; y holds
/// targets (SquaredError), 0/1 labels (Logistic) or class codes 0..K−1 (Softmax); sample_weight is
/// optional (nullptr: all ones).
template <class T>
struct DataView {
  const T* X = nullptr;              ///< the features, n_samples × n_features, row-major
  int64_t n_samples = 0;             ///< rows
  int64_t n_features = 0;            ///< columns
  const T* y = nullptr;              ///< n_samples targets, labels or class codes
  const T* sample_weight = nullptr;  ///< n_samples weights, or nullptr for all ones
};

/// The linear models' sample_weight check (every fit on either device, the closed form, Python's
/// estimators): finite, >= 0 and not all zero; throws InvalidArgument naming the first bad row.
template <class T>
void check_sample_weight(const T* sample_weight, int64_t n);

/// What the callback sees after every epoch.
struct EpochInfo {
  int64_t epoch;           ///< 1-based, counting every epoch this model has trained
  double loss;             ///< mean training loss of the epoch (see LinearModel::loss_curve)
  double validation_score; ///< R² / accuracy on the validation split; NaN without early stopping
};

/// Called after every epoch; returning true stops training (ensmallen's convention).
using EpochCallback = std::function<bool(const EpochInfo&)>;

/// Data-parallel training: called before every optimizer step with `grad`, the batch's gradient
/// summed over this worker's rows (`size` values: n_outputs·n_features coefficients, then the
/// intercepts), and sums[0], sums[1] = the batch's loss and weight summed over its rows; it replaces
/// all three by their sums over every worker (dlopt.distributed adds them in rank order), so every
/// worker takes the same step.
template <class T>
using BatchReducer = std::function<void(T* grad, int64_t size, double* sums)>;

namespace detail {
/// What a model remembers between fits: its curves, the shuffle's RNG state, and the rows of the
/// current fit (kept and updated by the one fit loop, cpp/src/models/fit_loop.cpp).
struct FitHistory {
  std::vector<double> loss_curve, lr_curve, validation_scores;
  std::vector<uint32_t> train, val;  ///< this fit's row indices (empty train: every row, in order)
  uint64_t rng_state = 0;
  int64_t schedule_length = 0;  ///< partial_fit: the configured epochs, for the schedule's defaults
};
}  // namespace detail

/// A linear, logistic or softmax regression over caller-owned coefficients, trained by any dlopt
/// optimizer (full-batch gradient descent or mini-batch SGD) with the options of TrainConfig.
template <class T>
class LinearModel {
 public:
  using Scalar = T;  ///< float or double

  /// Binds the model to caller-owned buffers: coef (n_outputs × n_features, row-major) and
  /// intercept (n_outputs). Logistic and SquaredError have n_outputs = 1.
  LinearModel(Objective objective, int64_t n_features, int64_t n_outputs, T* coef, T* intercept,
              TrainConfig config = {});
  ~LinearModel();
  LinearModel(const LinearModel&) = delete;
  LinearModel& operator=(const LinearModel&) = delete;

  /// Trains for up to config().epochs epochs from the current parameters (warm start: call
  /// reset_optimizer() first for a fresh optimizer state). Stops early as configured or when the
  /// callback returns true. Returns the epochs run in this call. Validates everything first.
  int64_t fit(const DataView<T>& data, const EpochCallback& callback = {});

  /// One epoch over `data` with the current optimizer state (no validation split, no stopping).
  void partial_fit(const DataView<T>& data);

  /// Forgets the optimizer state (moments, step counts); the next fit starts it afresh.
  void reset_optimizer();

  /// Sets (or, with an empty function, clears) the data-parallel batch reducer.
  void set_batch_reducer(BatchReducer<T> reducer) { reducer_ = std::move(reducer); }

  /// Mean loss of the objective on `data` plus the penalty (what training minimises).
  double loss(const DataView<T>& data) const;

  /// loss(data) and its gradient over all rows: n_outputs·n_features coefficients into grad_coef,
  /// n_outputs intercepts into grad_intercept (skipped when null). Summed over fixed row
  /// partitions in a fixed order, as the epochs are.
  double loss_and_gradient(const DataView<T>& data, T* grad_coef, T* grad_intercept) const;

  /// Writes the n × n_outputs decision values X Wᵀ + b (row-major) to `out`.
  void decision_function(const T* X, int64_t n, T* out) const;

  /// Training loss of every epoch trained so far: the mean of the losses of the epoch's
  /// mini-batches, each measured on its forward pass, i.e. before its update (as torch loops, Keras
  /// and scikit-learn's MLP report it); for full-batch training, the loss at the start of the epoch.
  const std::vector<double>& loss_curve() const { return history_.loss_curve; }
  /// Learning rate of every epoch trained so far (the lr_schedule's value; lr without one).
  const std::vector<double>& lr_curve() const { return history_.lr_curve; }
  /// Validation score after every epoch of the last fit with early stopping.
  const std::vector<double>& validation_scores() const { return history_.validation_scores; }
  /// Optimizer steps taken since the last reset_optimizer().
  int64_t steps() const { return steps_; }
  /// Epochs trained since construction.
  int64_t epochs_trained() const { return int64_t(history_.loss_curve.size()); }

  /// The training options, changeable between fits.
  TrainConfig& config() { return config_; }
  /// The training options.
  const TrainConfig& config() const { return config_; }
  /// The loss the model minimises.
  Objective objective() const { return objective_; }
  /// The number of features (columns of X).
  int64_t n_features() const { return n_features_; }
  /// The number of outputs (rows of coef): 1, or the number of classes (Softmax).
  int64_t n_outputs() const { return n_outputs_; }

 private:
  struct Work;
  class Cpu;  ///< this model as the fit loop's device (linear.cpp)
  void check_data(const DataView<T>& data, const char* what) const;
  void ensure_optimizer();
  /// One epoch over `rows` (see detail::FitBackend::epoch).
  double epoch(const DataView<T>& data, std::vector<uint32_t>& rows);
  /// fit with optimizer "lbfgs": full-batch L-BFGS (linear_lbfgs.cpp).
  int64_t fit_lbfgs(const DataView<T>& data, const EpochCallback& callback);

  Objective objective_;
  int64_t n_features_, n_outputs_;
  T* coef_;
  T* intercept_;
  TrainConfig config_;
  std::unique_ptr<AnyOptimizer<T>> optimizer_;
  StorageOptions storage_;  ///< the options optimizer_ was made with
  std::unique_ptr<Work> work_;
  detail::FitHistory history_;
  int64_t steps_ = 0;
  BatchReducer<T> reducer_;
};

/// Options of the closed-form least-squares solver.
struct LeastSquaresConfig {
  bool fit_intercept = true;  ///< solve for an intercept too
  double alpha = 0;  ///< ridge strength in dlopt's objective: mean((Xw+b−y)²) + α·½‖w‖²
};

/// Solves the (optionally ridge-regularised, sample-weighted) normal equations for one target.
/// XᵀX is accumulated in double precision from rows shifted by a reference row (so large column
/// means do not cancel), with symmetric rank-k updates over fixed row blocks summed in a fixed order;
/// the system is solved by Cholesky (LLT). If it is rank deficient (Cholesky fails or its reciprocal
/// condition estimate is below 1e-12), the minimum-norm solution is computed from an eigendecomposition
/// instead, as numpy.linalg.lstsq would return. Writes n_features coefficients and the intercept;
/// returns true if the fallback was used.
template <class T>
bool solve_least_squares(const DataView<T>& data, const LeastSquaresConfig& config, T* coef,
                         T* intercept);

}  // namespace dlopt
