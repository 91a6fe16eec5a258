#pragma once
/// @file muon.hpp
/// Muon, momentum orthogonalized by Newton–Schulz (Jordan et al., 2024), as torch.optim.Muon's code
/// (whose momentum buffer is an exponential average, unlike its docstring's B ← μB + g):
///
///   B ← B + (1−μ)·(G − B)                       U ← G + μ·(B − G)  (nesterov)  or  B
///   X ← U (Uᵀ if rows > cols),  X ← X / max(‖X‖_F, ε)
///   k times:  A ← X·Xᵀ,  X ← a·X + (b·A + c·A·A)·X
///   P ← P·(1 − γλ) − γ'·X (transposed back),  γ' = γ·√max(1, rows/cols)  ("original")
///                                               or γ·0.2·√max(rows, cols)  ("match_rms_adamw")
///
/// A *matrix rule*: its update is matrix algebra over a whole 2-D tensor (Eigen's GEMM), not an
/// elementwise function; it shares the config, registry, state slots, checkpoints and bindings of
/// the elementwise rules. The iteration runs in the compute type, or rounds every product to
/// bfloat16 as torch does (`ns_bfloat16`): then through oneDNN's bfloat16 GEMM when libdlopt has it
/// (core/bf16_matmul.hpp), else Eigen's GEMM in the compute type.

#include <Eigen/Core>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "dlopt/core/bf16_matmul.hpp"
#include "dlopt/core/device.hpp"
#include "dlopt/core/formats.hpp"
#include "dlopt/core/rule.hpp"

namespace dlopt {

/// The hyperparameters of Muon and their defaults, the same as dlopt.optim.Muon's in Python.
struct MuonConfig {
  double lr = 1e-3;  ///< γ, the learning rate
  double weight_decay = 0.1;  ///< λ, decoupled
  double momentum = 0.95;     ///< μ
  bool nesterov = true;  ///< orthogonalize the Nesterov look-ahead
  double ns_a = 3.4445;  ///< a, torch's ns_coefficients[0]
  double ns_b = -4.7750;  ///< b, torch's ns_coefficients[1]
  double ns_c = 2.0315;  ///< c, torch's ns_coefficients[2]
  double eps = 1e-7;  ///< ε, lower bound of the Frobenius norm
  double ns_steps = 5;      ///< k, an integer in [0, 100)
  double adjust_lr = 0;     ///< 0: "original", 1: "match_rms_adamw" (torch's adjust_lr_fn)
  bool ns_bfloat16 = false; ///< round the iteration to bfloat16 as torch does (ns_dtype="bfloat16")

  /// Throws dlopt::InvalidArgument naming the first field out of its range.
  void validate() const {
    detail::require(lr >= 0, "lr", lr, "must be >= 0");
    detail::require(momentum >= 0, "momentum", momentum, "must be >= 0");
    detail::require(weight_decay >= 0, "weight_decay", weight_decay, "must be >= 0");
    detail::require(eps >= 0, "eps", eps, "must be >= 0");
    detail::require(ns_steps >= 0 && ns_steps < 100 && ns_steps == std::floor(ns_steps), "ns_steps", ns_steps,
                    "must be an integer in [0, 100)");
    detail::require(adjust_lr == 0 || adjust_lr == 1, "adjust_lr_fn", adjust_lr,
                    "must be None, 'original' or 'match_rms_adamw'");
    detail::require(std::isfinite(ns_a) && std::isfinite(ns_b) && std::isfinite(ns_c), "ns_coefficients",
                    ns_a + ns_b + ns_c, "must be finite");
  }
  /// Calls f(name, field) for every field (bindings, checkpoints, the Python defaults).
  template <class F>
  void visit(F&& f) {
    f("lr", lr), f("weight_decay", weight_decay), f("momentum", momentum), f("nesterov", nesterov);
    f("ns_a", ns_a), f("ns_b", ns_b), f("ns_c", ns_c), f("eps", eps), f("ns_steps", ns_steps);
    f("adjust_lr", adjust_lr), f("ns_bfloat16", ns_bfloat16);
  }
};

/// The Muon rule (core/rule.hpp): a matrix rule over 2-D parameters (update_matrix).
struct MuonRule : RuleDefaults {
  using Config = MuonConfig;  ///< its hyperparameters
  static constexpr const char* name = "Muon";  ///< the optimizer's name (registry, checkpoints)
  static constexpr bool matrix = true;  ///< the update is matrix algebra over the whole tensor
  static constexpr bool device_matrix = true;  ///< cuda/muon.cu runs it on the GPU (cuda/muon_kernels.hpp)
  static constexpr std::array<const char*, 1> slots = {"momentum_buffer"};  ///< B, torch's state key
  /// The momentum buffer, always.
  static bool uses_slot(const Config&, int) { return true; }

  /// The per-step scalars.
  template <class T>
  struct Coeffs {
    T one_minus_momentum;  ///< 1 − μ
    T momentum;            ///< μ
    T a;                   ///< a, the Newton–Schulz coefficients
    T b;                   ///< b
    T c;                   ///< c
    T eps;                 ///< ε
    T decay;               ///< 1 − γλ
    double lr;             ///< γ (scaled by the shape in update_matrix)
    double adjust_lr;      ///< 0: "original", 1: "match_rms_adamw"
    int steps;             ///< k, Newton–Schulz iterations
    bool nesterov;         ///< orthogonalize the look-ahead U instead of B
    bool bf16;             ///< round every product to bfloat16
  };
  /// The config as T (nothing depends on the step).
  template <class T>
  static Coeffs<T> coeffs(const Config& c, const TensorScalars&) {
    return {T(1 - c.momentum), T(c.momentum), T(c.ns_a), T(c.ns_b), T(c.ns_c), T(c.eps),
            T(1 - c.lr * c.weight_decay), c.lr, c.adjust_lr, int(c.ns_steps), c.nesterov, c.ns_bfloat16};
  }

  // ---- the elementwise parts, DLOPT_HD: update_matrix and the CUDA step (cuda/muon_kernels.hpp) call them

  /// B's new value, B + (1−μ)·(G − B).
  template <class T>
  DLOPT_HD static T momentum_of(const Coeffs<T>& c, T buf, T grad) {
    return detail::lerp(buf, grad, c.one_minus_momentum);
  }
  /// U, what is orthogonalized: the Nesterov look-ahead G + μ·(B − G) of the new B, or B itself.
  template <class T>
  DLOPT_HD static T look_ahead(const Coeffs<T>& c, T grad, T buf) {
    return c.nesterov ? detail::lerp(grad, buf, c.momentum) : buf;
  }
  /// x rounded to bfloat16 (to nearest even) in the bfloat16 mode, else x.
  template <class V>
  DLOPT_HD static V ns_round(bool bf16, V x) {
    return bf16 ? V(formats::bf16_to_float(formats::float_to_bf16(float(x)))) : x;
  }
  /// What X is divided by: max(‖X‖_F, ε), the norm rounded as X is.
  template <class T>
  DLOPT_HD static T ns_divisor(const Coeffs<T>& c, T norm) {
    return detail::max(ns_round(c.bf16, norm), c.eps);
  }
  /// The parameter's new value from the orthogonalized x: P·(1 − γλ) − γ'·x, of one element (the GPU)
  /// or of whole Eigen matrices (update_matrix: an expression Eigen vectorizes).
  template <class T, class P, class X>
  DLOPT_HD static auto decayed_step(const Coeffs<T>& c, T lr_step, const P& p, const X& x) {
    return c.decay * p - lr_step * x;
  }
  /// γ', the learning rate adjusted to the shape (adjust_lr), in T.
  template <class T>
  static T adjusted_lr(const Coeffs<T>& c, int64_t rows, int64_t cols) {
    const double ratio = c.adjust_lr == 0 ? std::sqrt(std::max(1.0, double(rows) / double(cols)))
                                          : 0.2 * std::sqrt(double(std::max(rows, cols)));
    return T(c.lr * ratio);
  }

  /// The iteration above on the m × n (m ≤ n) row-major X, already rounded to bfloat16, through the
  /// bfloat16 GEMM library (core/bf16_matmul.hpp): the same roundings as the Eigen path (each product
  /// accumulated in float32, rounded once), in the library's summation order. X·Xᵀ and
  /// b·A + c·A·A are symmetric: only their upper tiles are computed.
  template <class T>
  static void newton_schulz_bf16(const Coeffs<T>& c, T* X, int64_t m, int64_t n) {
    std::vector<uint16_t> x(std::size_t(m * n)), next(x.size()), A(std::size_t(m * m)), Bm(A.size());
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = formats::float_to_bf16(float(X[i]));
    for (int k = 0; k < c.steps; ++k) {
      detail::bf16_matmul(x.data(), x.data(), true, m, n, m, true, 1.0f, nullptr, 0.0f, A.data());
      detail::bf16_matmul(A.data(), A.data(), false, m, m, m, true, float(c.c), A.data(), float(c.b), Bm.data());
      detail::bf16_matmul(Bm.data(), x.data(), false, m, m, n, false, 1.0f, x.data(), float(c.a), next.data());
      x.swap(next);
    }
    for (std::size_t i = 0; i < x.size(); ++i) X[i] = T(formats::bf16_to_float(x[i]));
  }

  /// One step of a rows × cols parameter (row-major) with its gradient and momentum buffer.
  template <class T>
  static void update_matrix(const Coeffs<T>& c, const TensorShape& shape, T* p, const T* g, T* const* s) {
    const int64_t rows = shape.rows, cols = shape.cols();
    using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Eigen::Map<Mat> P(p, rows, cols), B(s[0], rows, cols);
    Eigen::Map<const Mat> G(g, rows, cols);
    B = B.binaryExpr(G, [&](T buf, T grad) { return momentum_of(c, buf, grad); });
    const Mat U = c.nesterov ? Mat(G.binaryExpr(B, [&](T grad, T buf) { return look_ahead(c, grad, buf); })) : Mat(B);
    Mat X = rows > cols ? Mat(U.transpose()) : U;  // the wide orientation: the Gram matrix is the small one
    const auto to_bf16 = [&](auto&& m) {
      if (c.bf16) m = m.unaryExpr([](T x) { return ns_round(true, x); });
    };
    to_bf16(X);
    X /= ns_divisor(c, T(X.norm()));
    to_bf16(X);
    if (c.bf16 && detail::has_bf16_matmul()) {
      newton_schulz_bf16(c, X.data(), X.rows(), X.cols());
    } else {  // the compute type's Eigen GEMM, each product rounded to bfloat16 in the bf16 mode
      Mat A, Bm;
      for (int k = 0; k < c.steps; ++k) {
        A.noalias() = X * X.transpose();
        to_bf16(A);
        Bm = c.b * A;
        Bm.noalias() += c.c * (A * A);
        to_bf16(Bm);
        X = c.a * X + Bm * X;
        to_bf16(X);
      }
    }
    const T step = adjusted_lr(c, rows, cols);
    if (rows > cols) P = decayed_step(c, step, P, X.transpose());
    else P = decayed_step(c, step, P, X);
  }
};

}  // namespace dlopt
