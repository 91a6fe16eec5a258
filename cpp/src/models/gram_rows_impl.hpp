// The body of gram_rows.hpp's accumulate, for the level named by DLOPT_GRAM_LEVEL (a namespace).
// Included once per level's translation unit, never elsewhere. Everything here is Eigen (renamed
// per level by the build, -DEigen=dlopt_eigen_<level>) or plain arithmetic: a template instantiated
// here that another translation unit also instantiates could be kept by the linker for both.

#include <Eigen/Dense>

#include "gram_rows.hpp"

namespace dlopt::detail::DLOPT_GRAM_LEVEL {
namespace {

template <class T>
void accumulate_rows(const GramRows<T>& r, const GramSums& out) {
  using RowMatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using RowMatT = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using VecD = Eigen::VectorXd;
  using VecT = Eigen::Matrix<T, Eigen::Dynamic, 1>;
  constexpr int64_t kRowsPerBlock = 512;
  const int64_t d = r.d;
  // The sums live in this level's own allocations (aligned to its widest packet) and are copied out
  // at the end: Eigen's GEMV peels rows up to its packet alignment, so with the caller's buffers (16-byte
  // aligned by the baseline's allocator) the AVX levels' bits would depend on heap addresses.
  Eigen::MatrixXd A = Eigen::MatrixXd::Zero(d, d);
  VecD Xty = VecD::Zero(d), xsum = VecD::Zero(d);
  Eigen::Map<const Eigen::RowVectorXd> shift(r.shift, d);
  double ysum = 0, wsum = 0;
  RowMatD Bm(kRowsPerBlock, d);
  VecD yb(kRowsPerBlock);
  VecD rs(kRowsPerBlock);
  for (int64_t start = r.lo; start < r.hi; start += kRowsPerBlock) {
    const int64_t m = r.hi - start < kRowsPerBlock ? r.hi - start : kRowsPerBlock;
    Eigen::Map<const RowMatT> Xb(r.X + start * d, m, d);
    Eigen::Map<const VecT> ybT(r.y + start, m);
    Bm.topRows(m) = Xb.template cast<double>().rowwise() - shift;
    yb.head(m) = ybT.template cast<double>().array() - r.yshift;
    if (r.sample_weight) {  // rows scaled by √s: then BᵀB = Σ s (x−c)(x−c)ᵀ
      rs.head(m) = Eigen::Map<const VecT>(r.sample_weight + start, m).template cast<double>().cwiseSqrt();
      Bm.topRows(m) = rs.head(m).asDiagonal() * Bm.topRows(m);
      yb.head(m).array() *= rs.head(m).array();
      xsum.noalias() += Bm.topRows(m).transpose() * rs.head(m);
      ysum += yb.head(m).dot(rs.head(m));
      wsum += rs.head(m).squaredNorm();
    } else {
      xsum += Bm.topRows(m).colwise().sum().transpose();
      ysum += yb.head(m).sum();
      wsum += double(m);
    }
    auto Bs = Bm.topRows(m);
    A.template selfadjointView<Eigen::Lower>().rankUpdate(Bs.transpose());
    Xty.noalias() += Bs.transpose() * yb.head(m);
  }
  Eigen::Map<Eigen::MatrixXd>(out.A, d, d) = A;
  Eigen::Map<VecD>(out.Xty, d) = Xty;
  Eigen::Map<VecD>(out.xsum, d) = xsum;
  *out.ysum = ysum;
  *out.wsum = wsum;
}

}  // namespace

void accumulate(const GramRows<float>& rows, const GramSums& sums) { accumulate_rows(rows, sums); }
void accumulate(const GramRows<double>& rows, const GramSums& sums) { accumulate_rows(rows, sums); }

}  // namespace dlopt::detail::DLOPT_GRAM_LEVEL
