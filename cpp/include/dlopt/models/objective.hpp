#pragma once
/// @file objective.hpp
/// The per-row maths of the linear models' objectives, as DLOPT_HD functions: the CPU model
/// (cpp/src/models/linear.cpp) and the CUDA kernels (cuda/linear.cu) call these, so each loss and
/// its derivative dl/dz is written once. Every function takes the row's decision value(s) z
/// (bias included), its target y and sample weight s, and returns s·l while writing s·dl/dz.

#include <cmath>
#include <cstdint>

#include "dlopt/core/device.hpp"

namespace dlopt::objective {

/// Squared error: l = r², dl/dz = 2r, r = z − y.
template <class T>
DLOPT_HD T squared_error(T z, T y, T s, T& dz) {
  const T r = z - y;
  dz = T(2) * s * r;
  return s * r * r;
}

/// Binary cross-entropy on a logit: l = log(1 + e^z) − y z, dl/dz = sigmoid(z) − y; written to be
/// finite for any z.
template <class T>
DLOPT_HD T logistic(T z, T y, T s, T& dz) {
  using std::abs, std::exp, std::log1p;
  const T e = exp(-abs(z));
  const T p = z >= 0 ? T(1) / (T(1) + e) : e / (T(1) + e);
  dz = s * (p - y);
  return s * (detail::max(z, T(0)) - y * z + log1p(e));
}

/// Softmax cross-entropy over K logits z[0..K) (overwritten with s·dl/dz = s·(softmax − onehot(c))):
/// l = logsumexp(z) − z_c, computed after shifting by max(z) so no exponential overflows.
template <class T>
DLOPT_HD T softmax(T* z, int64_t K, int64_t c, T s) {
  using std::exp, std::log;
  T mx = z[0];
  for (int64_t k = 1; k < K; ++k) mx = detail::max(z[k], mx);
  const T zc = z[c] - mx;
  T sum = 0;
  for (int64_t k = 0; k < K; ++k) sum += (z[k] = exp(z[k] - mx));
  const T scale = s / sum;
  for (int64_t k = 0; k < K; ++k) z[k] *= scale;
  z[c] -= s;
  return s * (log(sum) - zc);
}

/// Gradient of the penalty α·R(W) at one coefficient c: l2·c + l1·sign(c) (penalty_coeffs).
template <class T>
DLOPT_HD T penalty_grad(T c, T l2, T l1) {
  return l2 * c + l1 * T((c > 0) - (c < 0));
}

}  // namespace dlopt::objective
