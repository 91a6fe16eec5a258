// solve_least_squares (dlopt/models/linear.hpp): the closed form of the squared-error objective.

#include <Eigen/Cholesky>
#include <Eigen/Dense>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "common.hpp"
#include "dlopt/models/linear.hpp"
#include "gram_rows.hpp"
#include "row_kernels.hpp"

namespace dlopt {

using detail::GramRows;
using detail::GramSums;
using detail::parallel_ok;

namespace {

/// gram_rows.hpp's accumulation for this CPU: in a portable build the copy for the level that the
/// optimizer kernels run at (cpu_kernels()), else the library's own.
template <class T>
void (*gram_accumulate())(const GramRows<T>&, const GramSums&) {
  using Fn = void (*)(const GramRows<T>&, const GramSums&);
#if defined(DLOPT_DISPATCH)
  static const std::string level = cpu_kernels();
  if (level == "x86-64-v4") return Fn(detail::gram_x86_64_v4::accumulate);
  if (level == "x86-64-v3") return Fn(detail::gram_x86_64_v3::accumulate);
#endif
  return Fn(detail::gram_baseline::accumulate);
}

}  // namespace

template <class T>
bool solve_least_squares(const DataView<T>& data, const LeastSquaresConfig& config, T* coef,
                         T* intercept) {
  const int64_t n = data.n_samples, d = data.n_features;
  if (n < 1 || d < 1 || !data.X || !data.y || !coef || !intercept)
    throw InvalidArgument("solve_least_squares: empty data or null buffer");
  detail::require(config.alpha >= 0 && std::isfinite(config.alpha), "alpha", config.alpha,
                  "must be a finite number >= 0");
  using Mat = Eigen::MatrixXd;
  using VecD = Eigen::VectorXd;
  if (data.sample_weight) check_sample_weight(data.sample_weight, n);
  // Shift by the first row (exact centering comes later): keeps the sums of squares small when
  // the columns have large means, so nothing cancels catastrophically.
  VecD shift = VecD::Zero(d);
  double yshift = 0;
  if (config.fit_intercept) {
    for (int64_t j = 0; j < d; ++j) shift[j] = double(data.X[j]);
    yshift = double(data.y[0]);
  }
  const int64_t parts = std::clamp<int64_t>((n + 4095) / 4096, 1, 16);
  std::vector<Mat> A(std::size_t(parts), Mat::Zero(d, d));
  std::vector<VecD> Xty(std::size_t(parts), VecD::Zero(d)), xsum(std::size_t(parts), VecD::Zero(d));
  std::vector<double> ysum(std::size_t(parts), 0.0), wsum(std::size_t(parts), 0.0);
  const auto accumulate = gram_accumulate<T>();
  auto part = [&](int64_t p) {
    const GramRows<T> rows{data.X, data.y, data.sample_weight, n * p / parts, n * (p + 1) / parts, d,
                           shift.data(), yshift};
    accumulate(rows, GramSums{A[p].data(), Xty[p].data(), xsum[p].data(), &ysum[p], &wsum[p]});
  };
  if (parts > 1 && parallel_ok(n * d)) {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < parts; ++p) part(p);
  } else {
    for (int64_t p = 0; p < parts; ++p) part(p);
  }
  for (int64_t p = 1; p < parts; ++p) {
    A[0] += A[p];
    Xty[0] += Xty[p];
    xsum[0] += xsum[p];
    ysum[0] += ysum[p];
    wsum[0] += wsum[p];
  }
  Mat G = A[0].template selfadjointView<Eigen::Lower>();
  VecD rhs = Xty[0];
  const double S = wsum[0];
  if (!(S > 0)) throw InvalidArgument("Invalid sample_weight: the weights sum to zero");
  VecD xbar = xsum[0] / S;  // means of the shifted columns
  const double ybar = ysum[0] / S;
  if (config.fit_intercept) {
    G.noalias() -= S * xbar * xbar.transpose();
    rhs.noalias() -= S * ybar * xbar;
  }
  if (!G.allFinite() || !rhs.allFinite()) {
    const std::string bad = detail::nonfinite_cell(data.X, n, d);
    throw InvalidArgument(bad.empty() ? "Input X or y contains NaN or infinity" : bad);
  }
  // mean((Xw + b − y)²) + α·½‖w‖²  ⇒  (XᵀX + αS/2·I) w = Xᵀy (centred when fitting the intercept)
  G.diagonal().array() += config.alpha * S / 2;
  VecD w;
  bool fallback = false;
  Eigen::LLT<Mat> llt(G);
  if (llt.info() == Eigen::Success && llt.rcond() > 1e-12) {
    w = llt.solve(rhs);
  } else {  // rank deficient: the minimum-norm solution, as lstsq gives
    fallback = true;
    Eigen::SelfAdjointEigenSolver<Mat> es(G);
    const VecD& ev = es.eigenvalues();
    const double cutoff = std::max(ev.cwiseAbs().maxCoeff(), 0.0) * 1e-12;
    VecD inv = VecD::Zero(d);
    for (int64_t j = 0; j < d; ++j)
      if (ev[j] > cutoff) inv[j] = 1.0 / ev[j];
    w = es.eigenvectors() * (inv.asDiagonal() * (es.eigenvectors().transpose() * rhs));
  }
  for (int64_t j = 0; j < d; ++j) coef[j] = T(w[j]);
  *intercept = config.fit_intercept ? T(ybar + yshift - (xbar + shift).dot(w)) : T(0);
  return fallback;
}


template bool solve_least_squares<float>(const DataView<float>&, const LeastSquaresConfig&, float*, float*);
template bool solve_least_squares<double>(const DataView<double>&, const LeastSquaresConfig&, double*,
                                          double*);

}  // namespace dlopt
