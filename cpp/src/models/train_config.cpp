// The linear models' checks and their messages, for every device and for Python (through
// _core.check_train_config and _core.check_sample_weight): TrainConfig::validate, parse_penalty and
// check_sample_weight. The other data checks are in common.hpp (check_shape, check_targets).

#include <cmath>
#include <string>

#include "common.hpp"
#include "dlopt/models/linear.hpp"

namespace dlopt {

Penalty parse_penalty(const std::string& name) {
  const std::string n = detail::lower(name);
  if (n == "none" || n.empty()) return Penalty::None;
  if (n == "l2") return Penalty::L2;
  if (n == "l1") return Penalty::L1;
  if (n == "elasticnet") return Penalty::ElasticNet;
  throw InvalidArgument("Invalid penalty: '" + name + "' (expected None, 'l2', 'l1' or 'elasticnet')");
}

void TrainConfig::validate() const {
  detail::require(lr >= 0 && std::isfinite(lr), "lr", lr, "must be a finite number >= 0");
  detail::require(epochs >= 1, "epochs", double(epochs), "must be >= 1");
  detail::require(batch_size >= 0, "batch_size", double(batch_size), "must be >= 1, or 0 for full batch");
  detail::require(batches >= 0, "batches", double(batches), "must be >= 0 (0: batches of batch_size rows)");
  detail::require(alpha >= 0 && std::isfinite(alpha), "alpha", alpha, "must be a finite number >= 0");
  detail::require(l1_ratio >= 0 && l1_ratio <= 1, "l1_ratio", l1_ratio, "must be in [0, 1]");
  detail::require(std::isnan(tol) || (tol >= 0 && std::isfinite(tol)), "tol", tol,
                  "must be >= 0, or None / NaN to disable");
  detail::require(shuffle_block >= 1, "shuffle_block", double(shuffle_block), "must be >= 1");
  detail::require(n_iter_no_change >= 1, "n_iter_no_change", double(n_iter_no_change), "must be >= 1");
  detail::require(validation_fraction > 0 && validation_fraction < 1, "validation_fraction",
                  validation_fraction, "must be in (0, 1)");
  if (optimizer_params.count("lr"))
    throw InvalidArgument("Invalid optimizer_params: 'lr' is set by the lr argument, not here");
  make_schedule(lr_schedule, lr, epochs);  // checks the name and every key
}

template <class T>
void check_sample_weight(const T* sw, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T s = sw[i];
    if (!std::isfinite(s) || s < 0)
      throw InvalidArgument("Invalid sample_weight: must be finite and >= 0 (row " + std::to_string(i) + ")");
    sum += double(s);
  }
  if (!(sum > 0)) throw InvalidArgument("Invalid sample_weight: the weights sum to zero");
}

template void check_sample_weight<float>(const float*, int64_t);
template void check_sample_weight<double>(const double*, int64_t);

}  // namespace dlopt
