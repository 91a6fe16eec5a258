#pragma once
/// @file betas.hpp
/// Validation shared by the optimizers that take PyTorch's `betas=(beta1, beta2)`.

#include "dlopt/core/error.hpp"

namespace dlopt::detail {

inline void require_betas(double beta1, double beta2) {
  require(beta1 >= 0 && beta1 < 1, "betas[0]", beta1, "must be in [0, 1)");
  require(beta2 >= 0 && beta2 < 1, "betas[1]", beta2, "must be in [0, 1)");
}

inline void require_common(double lr, double eps, double weight_decay) {
  require(lr >= 0, "lr", lr, "must be >= 0");
  require(eps >= 0, "eps", eps, "must be >= 0");
  require(weight_decay >= 0, "weight_decay", weight_decay, "must be >= 0");
}

}  // namespace dlopt::detail
