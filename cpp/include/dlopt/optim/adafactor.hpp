#pragma once
/// @file adafactor.hpp
/// Adafactor (Shazeer & Stern, 2018) as torch.optim.Adafactor: second moments factored into row
/// and column statistics for tensors of rank ≥ 2 (over the last two dimensions; leading dimensions
/// are a batch of matrices), a relative step size, and update clipping:
///
///   β̂₂ₜ = 1 − t^c (c = beta2_decay),   ρₜ = min(γ, 1/√t),   αₜ = max(ε₂, RMS(p))·ρₜ
///   p ← p·(1 − γλ)
///   matrix:  R ← lerp(R, mean_cols(g²), t^c)   C ← lerp(C, mean_rows(g²), t^c)
///            V̂ = R Cᵀ / max(mean(R), ε₁)
///   vector:  V̂ = V ← lerp(V, g², t^c)
///   U = g / √max(V̂, ε₁²)
///   p ← p − αₜ / max(1, RMS(U)/d) · U
///
/// A matrix's 1/√V̂ is taken in its factored form, 1/√R · √(mean(R)/C), capped at 1/ε₁: one
/// inverse square root per row and per column instead of one (with two divisions) per element.
/// It differs from torch's rsqrt of the product by a few rounding steps (≲ 4·10⁻⁷ relative in
/// float32), well inside the parity tests' tolerance, and lets the elementwise passes run at the
/// speed of memory. The factored form also gives Σ U² without a pass of its own when the cap
/// binds nowhere: Σᵢⱼ U² = Σⱼ (mean(R)/Cⱼ) · Σᵢ g²ᵢⱼ/Rᵢ, the inner sums taken with the column sums.
///
/// ε₁ = None (eps1 < 0 here) is the parameter dtype's machine epsilon. The statistics are sums over
/// rows, columns and the whole tensor: a whole-tensor ("matrix") rule, run on the host. Row and
/// column sums are taken over fixed blocks of rows combined in block order, so results do not depend
/// on the thread count. The state is tiny (R + C values per matrix) and stays in the compute type.

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "dlopt/core/lane_sum.hpp"
#include "dlopt/core/rule.hpp"

namespace dlopt {

/// The hyperparameters of Adafactor and their defaults, the same as dlopt.optim.Adafactor's in Python.
struct AdafactorConfig {
  double lr = 1e-2;  ///< γ, the learning rate
  double beta2_decay = -0.8;  ///< c, exponent of the second-moment decay 1 − tᶜ
  double eps1 = -1;  ///< ε₁ (torch's eps[0]); < 0: the dtype's machine epsilon (torch's None)
  double eps2 = 1e-3;  ///< ε₂ (torch's eps[1])
  double d = 1.0;    ///< clipping threshold
  double weight_decay = 0.0;  ///< λ, the weight decay
  bool maximize = false;  ///< ascend: step along +g

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require(lr >= 0, "lr", lr, "must be >= 0");
    detail::require(beta2_decay <= 0, "beta2_decay", beta2_decay, "must be <= 0");
    detail::require(eps1 == eps1, "eps[0]", eps1, "must be >= 0 (or None)");
    detail::require(eps2 >= 0, "eps[1]", eps2, "must be >= 0");
    detail::require(d >= 1, "d", d, "must be >= 1");
    detail::require(weight_decay >= 0, "weight_decay", weight_decay, "must be >= 0");
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("beta2_decay", beta2_decay), f("eps1", eps1), f("eps2", eps2), f("d", d);
    f("weight_decay", weight_decay), f("maximize", maximize);
  }
};

/// The Adafactor rule (core/rule.hpp): a whole-tensor rule (update_matrix), run on the host.
struct AdafactorRule : RuleDefaults {
  using Config = AdafactorConfig;  ///< its hyperparameters
  static constexpr const char* name = "Adafactor";  ///< the optimizer's name (registry, checkpoints)
  static constexpr bool matrix = true;  ///< the statistics are sums over the whole tensor
  static constexpr bool matrix_2d = false;  ///< any rank: vectors keep V, higher ranks are batches of matrices
  /// R, C and V, torch's state keys.
  static constexpr std::array<const char*, 3> slots = {"row_var", "col_var", "variance"};
  /// Every slot is declared; slot_shape says which one a tensor has.
  static bool uses_slot(const Config&, int) { return true; }
  /// A tensor of rank ≥ 2 keeps R (one per row) and C (one per column of each matrix); a vector
  /// keeps V (one per element).
  static SlotShape slot_shape(int k, int64_t rows) {
    if (rows == 0) return k == 2 ? SlotShape::Element : SlotShape::Unused;
    return k == 0 ? SlotShape::Rows : k == 1 ? SlotShape::Cols : SlotShape::Unused;
  }
  /// The state is tiny (R + C per matrix): it stays in the compute type.
  static SlotKind slot_kind(int) { return SlotKind::Wide; }

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    double lr;       ///< γ
    double rho;      ///< ρₜ = min(γ, 1/√t), the relative step size
    double eps2;     ///< ε₂
    double d;        ///< the clipping threshold
    double decay;    ///< 1 − γλ
    T beta2_weight;  ///< tᶜ = 1 − β̂₂ₜ (torch's one_minus_beta2_t)
    T eps1;          ///< ε₁ (the machine epsilon of T when the config's is < 0)
    T sign;          ///< −1 to maximize, else 1
  };
  /// ρₜ and tᶜ of step t, ε₁ resolved for T.
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars& s) {
    const double t = double(s.step);
    const T eps1 = c.eps1 < 0 ? std::numeric_limits<T>::epsilon() : T(c.eps1);
    return {c.lr, std::min(c.lr, 1 / std::sqrt(t)), c.eps2, c.d, 1 - c.lr * c.weight_decay,
            T(std::pow(t, c.beta2_decay)), eps1, T(c.maximize ? -1 : 1)};
  }

  /// Rows per block of the row/column sums: fixed, so sums do not depend on the thread count.
  static constexpr int64_t kRowBlock = 64;
  /// Tensors smaller than this run on the calling thread (as the elementwise passes do).
  static constexpr int64_t kParallelMin = int64_t(1) << 16;
  /// One tensor's step, row block by row block. Each pass over a block is a DLOPT_KERNEL function
  /// (its loops compiled for the CPU's instruction set in a portable build), called from the
  /// OpenMP loops of update_matrix.
  template <class T>
  struct Rows {
    const Coeffs<T>& c;  ///< the step's scalars
    T* p;                ///< the parameter, rows × cols
    const T* g;          ///< its gradient
    T* const* s;         ///< the slots R, C, V
    T* row_rsqrt;        ///< 1/√R per row, written by pass 1 (factored)
    int64_t cols;        ///< the last dimension
    int64_t rows;        ///< rows over all matrices (1 for a vector)
    int64_t per_matrix;  ///< rows of each matrix
    bool factored;       ///< rank ≥ 2: R and C (else V)
    int64_t stride;  ///< per block in `partial`: its column Σg² and Σg²/R (factored), then Σp²
    double* partial;  ///< per-block partial sums (pass 1), then Σ U² per block (pass 2)
    const T* col_rsqrt = nullptr;  ///< √(max(mean(R), ε₁)/C) per column of each matrix (factored)
    T floor = 0;  ///< ε₁², the floor of V̂ (vectors)
    T cap = 0;    ///< 1/ε₁, the cap of 1/√V̂ (matrices)
    T step = 0;   ///< −αₜ / max(1, RMS(U)/d), set before pass 3
    T decay = 1;  ///< 1 − γλ, set before pass 3

    /// x², summed in double.
    static double square(T x) { return double(x) * double(x); }
    /// One past the last row of block b.
    int64_t end(int64_t b) const { return std::min(rows, (b + 1) * kRowBlock); }

    /// 1/R of row r as the elements' U² see it: (1/√R)², in double.
    double row_weight(int64_t r) const { return double(row_rsqrt[r]) * double(row_rsqrt[r]); }

    /// Pass 1: the block's Σp², and for a matrix each row's Σg² (→ R) and the block's column Σg²
    /// and Σg²/R.
    DLOPT_KERNEL void sums(int64_t b) const {
      double* col = partial + b * stride;
      double* weighted = col + cols;
      double& p2 = col[stride - 1];
      for (int64_t r = b * kRowBlock; r < end(b); ++r) {
        const T* __restrict pr = p + r * cols;
        const T* __restrict gr = g + r * cols;
        if (!factored) {
          p2 += detail::LaneSum::of(cols, [&](int64_t j) { return square(pr[j]); });
          continue;
        }
        // Σp² and Σg² of the row in one loop (two streams in flight), each in LaneSum's order.
        detail::LaneSum row_p2, row_g2;
        detail::LaneSum::add_both(row_p2, row_g2, cols, [&](int64_t j) { return square(pr[j]); },
                                  [&](int64_t j) { return square(gr[j]); });
        p2 += row_p2.total();
        const double g2 = row_g2.total();
        s[0][r] = detail::lerp(s[0][r], T(g2 / double(cols)), c.beta2_weight);
        row_rsqrt[r] = T(1) / std::sqrt(s[0][r]);
        const double w = row_weight(r);
        for (int64_t j = 0; j < cols; ++j) {
          const double q = square(gr[j]);
          col[j] += q;
          weighted[j] += w * q;
        }
      }
    }

    /// f(U) for the elements of row r: U = g / √max(V̂, ε₁²), with 1/√V̂ = min(1/√R · √(mean(R)/C),
    /// 1/ε₁) for a matrix (NaN stays NaN), V̂ = V for a vector.
    template <class F>
    void for_row(int64_t r, const F& f) const {
      const T sign = c.sign;
      const T* __restrict gr = g + r * cols;
      if (factored) {
        const T row = row_rsqrt[r], top = cap;
        const T* __restrict col = col_rsqrt + (r / per_matrix) * cols;
        f([=](int64_t j) {
          const T inv = row * col[j];
          return (top < inv ? top : inv) * (sign * gr[j]);
        });
      } else {
        const T fl = floor;
        const T* __restrict var = s[2];
        f([=](int64_t j) { return T(1) / std::sqrt(detail::max(var[j], fl)) * (sign * gr[j]); });
      }
    }

    /// Pass 2: the block's Σ U² (update clipping).
    DLOPT_KERNEL double u_squares(int64_t b) const {
      double sum = 0;
      for (int64_t r = b * kRowBlock; r < end(b); ++r)
        for_row(r, [&](const auto& u) { sum += detail::LaneSum::of(cols, [&](int64_t j) { return square(u(j)); }); });
      return sum;
    }

    /// Pass 3: p ← p·(1 − γλ) + step·U.
    DLOPT_KERNEL void apply(int64_t b) const {
      const bool decays = decay != T(1);
      for (int64_t r = b * kRowBlock; r < end(b); ++r)
        for_row(r, [&](const auto& u) {
          T* __restrict pr = p + r * cols;
          for (int64_t j = 0; j < cols; ++j) pr[j] = (decays ? pr[j] * decay : pr[j]) + step * u(j);
        });
    }
  };

  /// The larger of a and x, NaN once either is NaN (then the cap check below fails).
  template <class T>
  static T nan_or_max(T a, T x) { return a < x || x != x ? x : a; }

  /// One tensor's step: R, C (or V), RMS(p) and RMS(U) in two or three passes over row blocks, then
  /// the update of the file comment.
  template <class T>
  static void update_matrix(const Coeffs<T>& c, const TensorShape& shape, T* p, const T* g, T* const* s) {
    const int64_t n = shape.size;
    const int64_t cols = shape.cols(), rows = shape.rows > 0 ? shape.rows : 1;  // a vector: one row
    const int64_t per_matrix = shape.rows > 0 ? rows / shape.batch : 1;
    const int64_t blocks = (rows + kRowBlock - 1) / kRowBlock;
    const bool factored = shape.rows > 0;
    const bool parallel = n >= kParallelMin;  // a small tensor: no thread team to wake (µs, not ms)
    const int64_t stride = factored ? 2 * cols + 1 : 1;
    thread_local std::vector<double> scratch;  // reused: no allocation per step once warm
    scratch.assign(std::size_t(blocks * stride), 0.0);
    thread_local std::vector<T> row_rsqrt, col_rsqrt;
    row_rsqrt.resize(std::size_t(factored ? rows : 0));
    col_rsqrt.resize(std::size_t(factored ? shape.batch * cols : 0));
    Rows<T> pass{c, p, g, s, row_rsqrt.data(), cols, rows, per_matrix, factored, stride, scratch.data()};
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t b = 0; b < blocks; ++b) pass.sums(b);
    double sum_p2 = 0;
    for (int64_t b = 0; b < blocks; ++b) sum_p2 += pass.partial[b * stride + stride - 1];
    const double alpha = std::max(c.eps2, std::sqrt(sum_p2) / std::sqrt(double(n))) * c.rho;
    // Σ U² from the factors (matrices): Σ over matrices and columns of (mean(R)/C)·Σᵢ g²/R, in order.
    double factored_u2 = 0;
    T largest_row = 0, largest_col = 0;  // of 1/√R and √(mean(R)/C): does the cap bind anywhere?
    if (factored) {  // C per matrix: the column sums of its blocks, in block order; the mean of its R
      thread_local std::vector<double> weighted;  // this matrix's Σᵢ g²/R per column
      weighted.resize(std::size_t(cols));
      for (int64_t m = 0; m < shape.batch; ++m) {
        for (int64_t j = 0; j < cols; ++j) {
          double sum = 0, wsum = 0;
          for (int64_t b = 0; b < blocks; ++b) {
            const int64_t first = b * kRowBlock, last = std::min(rows, first + kRowBlock);
            if (last <= m * per_matrix || first >= (m + 1) * per_matrix) continue;
            if (first >= m * per_matrix && last <= (m + 1) * per_matrix) {
              sum += pass.partial[b * stride + j];
              wsum += pass.partial[b * stride + cols + j];
            } else {  // a block that straddles two matrices: its rows of this matrix, directly
              for (int64_t r = std::max(first, m * per_matrix); r < std::min(last, (m + 1) * per_matrix); ++r) {
                const double q = Rows<T>::square(g[r * cols + j]);
                sum += q;
                wsum += pass.row_weight(r) * q;
              }
            }
          }
          T& cv = s[1][m * cols + j];
          cv = detail::lerp(cv, T(sum / double(per_matrix)), c.beta2_weight);
          weighted[std::size_t(j)] = wsum;
        }
        T mean = 0;
        for (int64_t r = 0; r < per_matrix; ++r) mean += s[0][m * per_matrix + r];
        mean = std::max(mean / T(per_matrix), c.eps1);
        for (int64_t j = 0; j < cols; ++j) {
          const T inv = std::sqrt(mean / s[1][m * cols + j]);
          col_rsqrt[std::size_t(m * cols + j)] = inv;
          factored_u2 += double(inv) * double(inv) * weighted[std::size_t(j)];
          largest_col = nan_or_max(largest_col, inv);
        }
      }
      for (int64_t r = 0; r < rows; ++r) largest_row = nan_or_max(largest_row, row_rsqrt[std::size_t(r)]);
    } else {
      for (int64_t j = 0; j < cols; ++j) s[2][j] = detail::lerp(s[2][j], g[j] * g[j], c.beta2_weight);
    }
    pass.col_rsqrt = col_rsqrt.data();
    pass.floor = T(double(c.eps1) * double(c.eps1));
    pass.cap = T(1) / c.eps1;
    // Float products are monotonic: no element's 1/√R·√(mean/C) exceeds the cap if the largest
    // factors' product does not. Otherwise (or a NaN, or a vector) pass 2 takes Σ U² element by element.
    double sum_u2 = factored_u2;
    if (!factored || !(largest_row * largest_col <= pass.cap)) {
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t b = 0; b < blocks; ++b) pass.partial[b] = pass.u_squares(b);
      sum_u2 = 0;
      for (int64_t b = 0; b < blocks; ++b) sum_u2 += pass.partial[b];
    }
    const double denom = std::max(1.0, std::sqrt(sum_u2) / (std::sqrt(double(n)) * c.d));
    pass.step = T(-alpha / denom);
    pass.decay = T(c.decay);
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t b = 0; b < blocks; ++b) pass.apply(b);
  }
};

}  // namespace dlopt
