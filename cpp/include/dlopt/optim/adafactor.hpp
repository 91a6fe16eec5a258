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
/// rows, columns and the whole tensor: a whole-tensor ("matrix") rule. Row and column sums are taken
/// over fixed blocks of rows combined in block order, so results do not depend on the thread count,
/// and the CUDA step (cuda/adafactor.hpp), which runs the same functions over the same blocks in the
/// same order, equals the CPU's bit for bit. The state is tiny (R + C values per matrix) and stays in
/// the compute type.

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

/// The Adafactor rule (core/rule.hpp): a whole-tensor rule (update_matrix on the host; the CUDA step
/// runs the same Rows functions, cuda/adafactor.hpp).
struct AdafactorRule : RuleDefaults {
  using Config = AdafactorConfig;  ///< its hyperparameters
  static constexpr const char* name = "Adafactor";  ///< the optimizer's name (registry, checkpoints)
  static constexpr bool matrix = true;  ///< the statistics are sums over the whole tensor
  static constexpr bool matrix_2d = false;  ///< any rank: vectors keep V, higher ranks are batches of matrices
  static constexpr bool device_matrix = true;  ///< has a CUDA step (cuda/adafactor.hpp)
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

  /// The larger of a and x, NaN once either is NaN (then the cap check fails).
  template <class T>
  DLOPT_HD static T nan_or_max(T a, T x) { return a < x || x != x ? x : a; }

  /// One tensor's step, row block by row block, and the maths between the passes, written once:
  /// update_matrix runs it on the host (the hot passes are DLOPT_KERNEL functions, their loops
  /// compiled for the CPU's instruction set in a portable build, called from OpenMP loops); the
  /// CUDA step (cuda/adafactor.hpp) runs the DLOPT_HD parts on the device, block for block in the
  /// same order, so both give the same bits.
  template <class T>
  struct Rows {
    Coeffs<T> c;         ///< the step's scalars
    T* p;                ///< the parameter, rows × cols
    const T* g;          ///< its gradient
    T* const* s;         ///< the slots R, C, V
    T* row_rsqrt;        ///< 1/√R per row, written by pass 1 (factored)
    int64_t cols;        ///< the last dimension
    int64_t rows;        ///< rows over all matrices (1 for a vector)
    int64_t per_matrix;  ///< rows of each matrix
    int64_t batch;       ///< matrices (1 for a vector)
    bool factored;       ///< rank ≥ 2: R and C (else V)
    int64_t stride;  ///< per block in `partial`: its column Σg² and Σg²/R (factored), then Σp²
    double* partial;  ///< per-block partial sums (pass 1), then Σ U² per block (pass 2)
    double* weighted = nullptr;  ///< per column of each matrix: Σᵢ g²/R (the device then keeps its term of Σ U² there)
    T* col_rsqrt = nullptr;  ///< √(max(mean(R), ε₁)/C) per column of each matrix (factored)
    T floor = 0;  ///< ε₁², the floor of V̂ (vectors)
    T cap = 0;    ///< 1/ε₁, the cap of 1/√V̂ (matrices)
    T step = 0;   ///< −αₜ / max(1, RMS(U)/d), set before pass 3
    T decay = 1;  ///< 1 − γλ, set before pass 3

    /// The view of one tensor's buffers and scratch (`slots` outlives it).
    DLOPT_HD static Rows make(const Coeffs<T>& c, const TensorShape& shape, T* p, const T* g, T* const* slots,
                              T* row_rsqrt, double* partial) {
      const bool factored = shape.rows > 0;
      const int64_t cols = factored ? shape.size / shape.rows : shape.size;
      const int64_t rows = factored ? shape.rows : 1;  // a vector: one row
      return {c, p, g, slots, row_rsqrt, cols, rows, factored ? rows / shape.batch : 1, factored ? shape.batch : 1,
              factored, factored ? 2 * cols + 1 : 1, partial};
    }

    /// x², summed in double.
    DLOPT_HD static double square(T x) { return double(x) * double(x); }
    /// Row blocks of the tensor.
    DLOPT_HD int64_t blocks() const { return (rows + kRowBlock - 1) / kRowBlock; }
    /// One past the last row of block b.
    DLOPT_HD int64_t end(int64_t b) const { return rows < (b + 1) * kRowBlock ? rows : (b + 1) * kRowBlock; }

    /// 1/R of row r as the elements' U² see it: (1/√R)², in double.
    DLOPT_HD double row_weight(int64_t r) const { return double(row_rsqrt[r]) * double(row_rsqrt[r]); }

    /// Row r's R from its Σg² (in LaneSum's order), and its 1/√R.
    DLOPT_HD void row_statistic(int64_t r, double g2) const {
      s[0][r] = detail::lerp(s[0][r], T(g2 / double(cols)), c.beta2_weight);
      row_rsqrt[r] = T(1) / std::sqrt(s[0][r]);
    }
    /// One element's part of its column's Σg² and Σg²/R (w = row_weight of its row).
    DLOPT_HD static void add_column(double& sum, double& wsum, double w, T gv) {
      const double q = square(gv);
      sum += q;
      wsum += w * q;
    }

    /// Pass 1: the block's Σp², and for a matrix each row's Σg² (→ R) and the block's column Σg²
    /// and Σg²/R.
    DLOPT_KERNEL void sums(int64_t b) const {
      double* col = partial + b * stride;
      double* wcol = col + cols;
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
        row_statistic(r, row_g2.total());
        const double w = row_weight(r);
        for (int64_t j = 0; j < cols; ++j) add_column(col[j], wcol[j], w, gr[j]);
      }
    }

    /// Σp² of the tensor: the blocks' sums in block order.
    DLOPT_HD double sum_p2() const {
      double sum = 0;
      for (int64_t b = 0; b < blocks(); ++b) sum += partial[b * stride + stride - 1];
      return sum;
    }
    /// αₜ = max(ε₂, RMS(p))·ρₜ.
    DLOPT_HD double alpha(double p2) const {
      const double rms = std::sqrt(p2) / std::sqrt(double(rows * cols));
      return (c.eps2 < rms ? rms : c.eps2) * c.rho;
    }

    /// Column j of matrix m: C from its blocks' column sums, in block order (a block that straddles
    /// two matrices adds its rows of this one directly), and its Σᵢ g²/R into `weighted`.
    DLOPT_HD void column_statistic(int64_t m, int64_t j) const {
      const int64_t top = m * per_matrix, bottom = (m + 1) * per_matrix;
      double sum = 0, wsum = 0;
      for (int64_t b = top / kRowBlock; b < blocks() && b * kRowBlock < bottom; ++b) {
        const int64_t first = b * kRowBlock, last = end(b);
        if (first >= top && last <= bottom) {
          sum += partial[b * stride + j];
          wsum += partial[b * stride + cols + j];
        } else {
          for (int64_t r = first > top ? first : top; r < (last < bottom ? last : bottom); ++r)
            add_column(sum, wsum, row_weight(r), g[r * cols + j]);
        }
      }
      T& cv = s[1][m * cols + j];
      cv = detail::lerp(cv, T(sum / double(per_matrix)), c.beta2_weight);
      weighted[m * cols + j] = wsum;
    }
    /// max(mean(R), ε₁) of matrix m, R added in row order in T.
    DLOPT_HD T matrix_mean(int64_t m) const {
      T mean = 0;
      for (int64_t r = 0; r < per_matrix; ++r) mean += s[0][m * per_matrix + r];
      mean = mean / T(per_matrix);
      return mean < c.eps1 ? c.eps1 : mean;
    }
    /// Column j of matrix m's √(mean/C) into col_rsqrt, and its term of Σ U² (when the cap binds
    /// nowhere): (mean/C)·Σᵢ g²/R.
    DLOPT_HD double column_factor(int64_t m, int64_t j, T mean) const {
      const T inv = std::sqrt(mean / s[1][m * cols + j]);
      col_rsqrt[m * cols + j] = inv;
      return double(inv) * double(inv) * weighted[m * cols + j];
    }
    /// A vector's V at element j.
    DLOPT_HD void vector_variance(int64_t j) const { s[2][j] = detail::lerp(s[2][j], g[j] * g[j], c.beta2_weight); }

    /// ε₁² and 1/ε₁, the floor and cap of the passes after the statistics.
    DLOPT_HD void set_limits() {
      floor = T(double(c.eps1) * double(c.eps1));
      cap = T(1) / c.eps1;
    }
    /// Whether Σ U² takes pass 2: a vector, or a matrix whose largest 1/√R and √(mean/C) (NaN if
    /// any is) exceed the cap together. Float products are monotonic: no element's 1/√R·√(mean/C)
    /// exceeds the cap if the largest factors' product does not.
    DLOPT_HD bool needs_u_pass(T largest_row, T largest_col) const {
      return !factored || !(largest_row * largest_col <= cap);
    }
    /// The step of pass 3 from αₜ and Σ U².
    DLOPT_HD void set_step(double alpha, double sum_u2) {
      const double clip = std::sqrt(sum_u2) / (std::sqrt(double(rows * cols)) * c.d);
      step = T(-alpha / (clip > 1.0 ? clip : 1.0));
      decay = T(c.decay);
    }

    /// f(U) for the elements of row r: U = g / √max(V̂, ε₁²), with 1/√V̂ = min(1/√R · √(mean(R)/C),
    /// 1/ε₁) for a matrix (NaN stays NaN), V̂ = V for a vector.
    template <class F>
    DLOPT_HD void for_row(int64_t r, const F& f) const {
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
    /// Σ U² of the tensor from pass 2: the blocks' sums in block order.
    DLOPT_HD double sum_u2() const {
      double sum = 0;
      for (int64_t b = 0; b < blocks(); ++b) sum += partial[b];
      return sum;
    }

    /// Pass 3 on row r's elements first, first + Stride, ...: p ← p·(1 − γλ) + step·U.
    template <int64_t Stride>
    DLOPT_HD void apply_row(int64_t r, int64_t first) const {
      const bool decays = decay != T(1);
      const T st = step, dc = decay;
      for_row(r, [&](const auto& u) {
        T* __restrict pr = p + r * cols;
        for (int64_t j = first; j < cols; j += Stride) pr[j] = (decays ? pr[j] * dc : pr[j]) + st * u(j);
      });
    }
    /// Pass 3 on block b.
    DLOPT_KERNEL void apply(int64_t b) const {
      for (int64_t r = b * kRowBlock; r < end(b); ++r) apply_row<1>(r, 0);
    }
  };

  /// One tensor's step: R, C (or V), RMS(p) and RMS(U) in two or three passes over row blocks, then
  /// the update of the file comment.
  template <class T>
  static void update_matrix(const Coeffs<T>& c, const TensorShape& shape, T* p, const T* g, T* const* s) {
    const bool factored = shape.rows > 0;
    const bool parallel = shape.size >= kParallelMin;  // a small tensor: no thread team to wake (µs, not ms)
    thread_local std::vector<double> scratch, weighted;  // reused: no allocation per step once warm
    thread_local std::vector<T> row_rsqrt, col_rsqrt;
    row_rsqrt.resize(std::size_t(factored ? shape.rows : 0));
    Rows<T> pass = Rows<T>::make(c, shape, p, g, s, row_rsqrt.data(), nullptr);
    const int64_t blocks = pass.blocks(), cols = pass.cols;
    scratch.assign(std::size_t(blocks * pass.stride), 0.0);
    pass.partial = scratch.data();
    col_rsqrt.resize(std::size_t(factored ? pass.batch * cols : 0));
    weighted.resize(col_rsqrt.size());
    pass.col_rsqrt = col_rsqrt.data();
    pass.weighted = weighted.data();
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t b = 0; b < blocks; ++b) pass.sums(b);
    const double alpha = pass.alpha(pass.sum_p2());
    pass.set_limits();
    // Σ U² from the factors (matrices): Σ over matrices and columns of (mean(R)/C)·Σᵢ g²/R, in order.
    double factored_u2 = 0;
    T largest_row = 0, largest_col = 0;  // of 1/√R and √(mean(R)/C): does the cap bind anywhere?
    if (factored) {
      for (int64_t m = 0; m < pass.batch; ++m) {
        for (int64_t j = 0; j < cols; ++j) pass.column_statistic(m, j);
        const T mean = pass.matrix_mean(m);
        for (int64_t j = 0; j < cols; ++j) {
          factored_u2 += pass.column_factor(m, j, mean);
          largest_col = nan_or_max(largest_col, pass.col_rsqrt[m * cols + j]);
        }
      }
      for (int64_t r = 0; r < pass.rows; ++r) largest_row = nan_or_max(largest_row, row_rsqrt[std::size_t(r)]);
    } else {
      for (int64_t j = 0; j < cols; ++j) pass.vector_variance(j);
    }
    double sum_u2 = factored_u2;
    if (pass.needs_u_pass(largest_row, largest_col)) {  // Σ U² element by element
#pragma omp parallel for schedule(static) if (parallel)
      for (int64_t b = 0; b < blocks; ++b) pass.partial[b] = pass.u_squares(b);
      sum_u2 = pass.sum_u2();
    }
    pass.set_step(alpha, sum_u2);
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t b = 0; b < blocks; ++b) pass.apply(b);
  }
};

}  // namespace dlopt
