// detail::fit_loop (fit_loop.hpp): the epochs of LinearModel::fit and cuda::LinearTrainer::fit.

#include "fit_loop.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "common.hpp"

namespace dlopt::detail {
namespace {

/// The rows of this fit: a validation split for early stopping (stratified for classifiers), an
/// index array to shuffle, or none (every row, in place).
template <class T>
void split_rows(const TrainConfig& c, Objective objective, int64_t K, const Targets<T>& data, Rng& rng,
                FitHistory& h) {
  const int64_t n = data.n;
  h.train.clear();
  h.val.clear();
  if (c.early_stopping) {
    std::vector<uint32_t> all(static_cast<std::size_t>(n));
    for (int64_t i = 0; i < n; ++i) all[i] = uint32_t(i);
    rng.shuffle(all.data(), n);
    if (objective == Objective::SquaredError) {
      const int64_t nv = int64_t(std::ceil(c.validation_fraction * double(n)));
      h.val.assign(all.begin(), all.begin() + nv);
      h.train.assign(all.begin() + nv, all.end());
    } else {  // stratified: the same fraction of every class
      std::vector<std::vector<uint32_t>> by_class(static_cast<std::size_t>(std::max<int64_t>(K, 2)));
      for (uint32_t r : all) by_class[std::size_t(data.y[r])].push_back(r);
      for (const auto& rows : by_class) {
        const auto nv = std::size_t(std::ceil(c.validation_fraction * double(rows.size())));
        h.val.insert(h.val.end(), rows.begin(), rows.begin() + std::min(nv, rows.size()));
        h.train.insert(h.train.end(), rows.begin() + std::min(nv, rows.size()), rows.end());
      }
      std::sort(h.val.begin(), h.val.end());
      std::sort(h.train.begin(), h.train.end());
    }
    if (h.val.empty() || h.train.empty())
      throw InvalidArgument("Invalid validation_fraction: " + std::to_string(c.validation_fraction) +
                            " leaves an empty training or validation set with " + std::to_string(n) +
                            " samples");
    auto weight = [&](const std::vector<uint32_t>& rows) {
      double w = 0;
      for (uint32_t r : rows) w += data.sample_weight ? double(data.sample_weight[r]) : 1.0;
      return w;
    };
    if (!(weight(h.train) > 0) || !(weight(h.val) > 0))
      throw InvalidArgument("Invalid sample_weight: zero total weight in the training or validation split");
  } else if (c.shuffle && ((c.batch_size > 0 && c.batch_size < n) || c.batches > 1)) {
    h.train.resize(std::size_t(n));
    for (int64_t i = 0; i < n; ++i) h.train[i] = uint32_t(i);
  }
}

std::string diverged(int64_t epoch, double lr) {
  std::ostringstream msg;
  msg << "Training diverged at epoch " << epoch << ": the loss became inf or NaN. Lower lr (now " << lr
      << ") or standardize X (the parameters were restored to their values before fit).";
  return msg.str();
}

}  // namespace

template <class T>
int64_t fit_loop(FitBackend<T>& device, const TrainConfig& c, Objective objective, int64_t K,
                 const Targets<T>& data, FitHistory& h, const EpochCallback& callback) {
  Rng rng = fit_rng(c.seed);
  split_rows(c, objective, K, data, rng, h);
  h.rng_state = rng.next();

  // The lr of every epoch of this call, checked before anything trains.
  const std::vector<double> lrs = epoch_lrs(c, int64_t(h.loss_curve.size()), h.schedule_length);
  device.ensure_optimizer();

  std::vector<T> before, best_params;  // for the rollback; the best epoch's, with early stopping
  device.save(before);
  // Schedule-Free: training steps at y; the parameters between fits (predictions, coef_, the
  // validation score, the best epoch kept) are the average x, as its package's train() / eval().
  device.set_train_mode(true);
  const std::size_t curve_before = h.loss_curve.size();
  h.validation_scores.clear();

  const bool plateau = !std::isnan(c.tol) && !c.early_stopping;
  const double tol = std::isnan(c.tol) ? 0.0 : c.tol;
  double best = c.early_stopping ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  int64_t no_improvement = 0, run = 0;
  double lr_now = c.lr;  // what ensure_optimizer set
  try {
    for (int64_t e = 0; e < c.epochs; ++e) {
      if (lrs[std::size_t(e)] != lr_now) device.set_lr(lr_now = lrs[std::size_t(e)]);
      const double loss = device.epoch(h.train);
      if (!std::isfinite(loss)) throw NonFinite{};
      h.loss_curve.push_back(loss);
      h.lr_curve.push_back(lrs[std::size_t(e)]);
      ++run;
      double val = std::numeric_limits<double>::quiet_NaN();
      bool stop = false;
      if (c.early_stopping) {
        device.set_train_mode(false);
        val = device.score(h.val);
        if (!std::isfinite(val)) throw NonFinite{};
        h.validation_scores.push_back(val);
        no_improvement = val < best + tol ? no_improvement + 1 : 0;
        if (val > best) {
          best = val;
          device.save(best_params);
        }
        device.set_train_mode(true);
        stop = no_improvement >= c.n_iter_no_change;
      } else if (plateau) {
        no_improvement = loss > best - tol ? no_improvement + 1 : 0;
        best = std::min(best, loss);
        stop = no_improvement >= c.n_iter_no_change;
      }
      if (callback && callback({int64_t(h.loss_curve.size()), loss, val})) stop = true;
      if (stop) break;
    }
  } catch (const NonFinite&) {
    device.restore(before);
    h.loss_curve.resize(curve_before);
    h.lr_curve.resize(curve_before);
    device.reset_optimizer();  // its moments were computed from non-finite values
    std::string msg = device.bad_input();
    if (msg.empty()) msg = diverged(int64_t(curve_before) + run + 1, lrs[std::size_t(run)]);
    throw InvalidArgument(msg);
  } catch (...) {  // a callback's or reducer's error: the parameters are left at x, as between calls
    device.set_train_mode(false);
    throw;
  }
  device.set_train_mode(false);
  if (c.early_stopping && !best_params.empty()) device.restore(best_params);  // the best epoch's
  return run;
}

template int64_t fit_loop<float>(FitBackend<float>&, const TrainConfig&, Objective, int64_t,
                                 const Targets<float>&, FitHistory&, const EpochCallback&);
template int64_t fit_loop<double>(FitBackend<double>&, const TrainConfig&, Objective, int64_t,
                                  const Targets<double>&, FitHistory&, const EpochCallback&);

}  // namespace dlopt::detail
