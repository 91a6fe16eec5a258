// LinearModel::fit with optimizer "lbfgs": full-batch L-BFGS (dlopt/optim/lbfgs.hpp) with torch's
// strong-Wolfe line search over the coefficients and intercepts, the objective and its gradient from
// LinearModel::loss_and_gradient. One epoch is one L-BFGS iteration; an evaluation is one pass over
// the data (a line search may take more than one per iteration). This is what scikit-learn's
// LogisticRegression(solver="lbfgs") does (with scipy's L-BFGS-B).

#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "common.hpp"
#include "dlopt/models/linear.hpp"
#include "dlopt/optim/lbfgs.hpp"

namespace dlopt {
namespace {

/// The loss became inf or NaN: L-BFGS has put the parameters back; fit explains.
struct NonFiniteLoss {};

/// L-BFGS options from the TrainConfig: lr, epochs (max_iter), tol (tolerance_change) and
/// optimizer_params history_size, max_eval, tolerance_grad, tolerance_change; torch's defaults
/// otherwise. Everything L-BFGS cannot honour is refused, naming the setting.
LBFGSOptions lbfgs_options(const TrainConfig& c) {
  auto refuse = [](const std::string& what) {
    throw InvalidArgument("optimizer 'lbfgs' (full-batch L-BFGS): " + what);
  };
  if (c.batch_size != 0) refuse("batch_size must be None (full batch)");
  if (c.early_stopping) refuse("early_stopping is not supported");
  if (c.penalty == Penalty::L1 || c.penalty == Penalty::ElasticNet)
    refuse("penalty must be None or 'l2' (L-BFGS needs a smooth objective)");
  if (detail::lower(c.lr_schedule.name) != "constant") refuse("lr_schedule must be None");
  if (c.optimizer_storage != StorageOptions{}) refuse("optimizer_params takes no storage options");
  LBFGSOptions o;
  o.lr = c.lr;
  o.max_iter = c.epochs;
  o.line_search_fn = "strong_wolfe";
  const std::set<std::string> known = {"history_size", "max_eval", "tolerance_grad", "tolerance_change"};
  for (const auto& [key, value] : c.optimizer_params) {
    if (!known.count(key))
      refuse("unknown optimizer_params key '" + key +
             "' (expected history_size, max_eval, tolerance_grad, tolerance_change)");
    const bool integral = key == "history_size" || key == "max_eval";
    if (integral && value != std::floor(value)) refuse(key + " must be an integer");
    if (key == "history_size") o.history_size = int64_t(value);
    if (key == "max_eval") o.max_eval = int64_t(value);
    if (key == "tolerance_grad") o.tolerance_grad = value;
    if (key == "tolerance_change") o.tolerance_change = value;
  }
  if (!std::isnan(c.tol)) {
    if (c.optimizer_params.count("tolerance_change")) refuse("give tol or optimizer_params['tolerance_change'], not both");
    o.tolerance_change = c.tol;
  }
  o.validate();
  return o;
}

}  // namespace

template <class T>
int64_t LinearModel<T>::fit_lbfgs(const DataView<T>& data, const EpochCallback& callback) {
  check_data(data, "fit");
  config_.validate();
  const LBFGSOptions options = lbfgs_options(config_);
  const int64_t K = n_outputs_, nc = K * n_features_;
  std::vector<Span<T>> params = {{coef_, nc}};
  if (config_.fit_intercept) params.push_back({intercept_, K});
  LBFGS<T> lbfgs(params, options);
  auto closure = [&](const std::vector<Span<T>>& grad) -> double {
    const double loss = loss_and_gradient(data, grad[0].data,
                                          config_.fit_intercept ? grad[1].data : nullptr);
    if (!std::isfinite(loss)) throw NonFiniteLoss{};  // L-BFGS restores the parameters
    return loss;
  };
  const std::size_t curve_before = history_.loss_curve.size();
  int64_t run = 0;
  auto hook = [&](double loss) {
    history_.loss_curve.push_back(loss);
    history_.lr_curve.push_back(config_.lr);
    ++run;
    return callback && callback({int64_t(history_.loss_curve.size()), loss, std::numeric_limits<double>::quiet_NaN()});
  };
  try {
    lbfgs.step(closure, hook);
  } catch (...) {
    history_.loss_curve.resize(curve_before);
    history_.lr_curve.resize(curve_before);
    try {
      throw;
    } catch (const NonFiniteLoss&) {
      const std::string bad = detail::nonfinite_cell(data.X, data.n_samples, data.n_features);
      throw InvalidArgument(bad.empty() ? "L-BFGS: the loss became inf or NaN (the parameters were restored to "
                                          "their values before fit)"
                                        : bad);
    }
  }
  steps_ += run;
  history_.validation_scores.clear();
  return run;
}

template int64_t LinearModel<float>::fit_lbfgs(const DataView<float>&, const EpochCallback&);
template int64_t LinearModel<double>::fit_lbfgs(const DataView<double>&, const EpochCallback&);

}  // namespace dlopt
