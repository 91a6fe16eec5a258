#pragma once
/// @file cuda/linear_kernels.hpp
/// The bodies of the linear-model CUDA kernels (cuda/linear.cu) as DLOPT_HD functions of one
/// thread's work, so the C++ tests can run every (block, thread) of a launch on the host and compare
/// with the CPU model without a GPU. The per-row maths is dlopt/models/objective.hpp's. Internal.
///
/// One batch, four launches, no atomics (so results do not depend on scheduling):
///  1. forward: one warp per row; lane l sums x[f]·w_k[f] over f ≡ l (mod 32), the 32 partials are
///     combined by a fixed xor butterfly (warp_tree on the host); lane 0 adds b, then writes the
///     row's s·loss and overwrites z with s·dl/dz (objective::*).
///  2. partial: the batch is cut into `parts` fixed row ranges; one thread per (range, column,
///     class tile) sums its rows in order, in double. Columns 0..d-1 are gW, d is gb, and d+1 / d+2
///     carry Σ s·l and Σ s (class tile 0 only).
///  3. reduce: one block per output; thread t sums ranges t, t + kReduceThreads, ... in order, then a
///     fixed shared-memory tree (block_tree).
///  4. apply: grad = T(sum) · T(1 / Σ s) + penalty gradient; thread 0 adds the batch's loss and
///     weight to the epoch's two accumulators (stream order: the same order every run).

#include <cstdint>

#include "dlopt/models/linear.hpp"
#include "dlopt/models/objective.hpp"

namespace dlopt::cuda::detail {

constexpr int kWarp = 32;
constexpr int kForwardWarps = 8;       ///< rows per forward block
constexpr int kPartialThreads = 128;   ///< columns per partial block
constexpr int kClassTile = 4;          ///< classes per partial thread (registers)
constexpr int kReduceThreads = 256;
constexpr int64_t kMaxParts = 1024;    ///< row ranges per batch, at most ...
constexpr int64_t kMinPartRows = 32;   ///< ... of at least this many rows

/// Row ranges of a batch of `count` rows: a function of the count only.
inline int64_t batch_parts(int64_t count) {
  const int64_t p = count / kMinPartRows;
  return p < 1 ? 1 : p > kMaxParts ? kMaxParts : p;
}

/// Everything one batch's launches read and write (device pointers).
template <class T>
struct LinearBatch {
  const T* X = nullptr;             ///< n × d, row-major
  const T* y = nullptr;
  const T* sw = nullptr;            ///< null: all ones
  const uint32_t* idx = nullptr;    ///< the epoch's row order; null: rows in order
  int64_t offset = 0, count = 0;    ///< the batch: rows idx[offset .. offset + count)
  int64_t d = 0, K = 1;
  Objective objective = Objective::SquaredError;
  const T* W = nullptr;             ///< K × d
  const T* b = nullptr;             ///< K
  T* Z = nullptr;                   ///< count × K: z, then s·dl/dz
  T* row_loss = nullptr;            ///< count: s·l
  double* partials = nullptr;       ///< parts × (np + 2)
  int64_t parts = 1;
  double* sums = nullptr;           ///< np + 2: gradient sums, Σ s·l, Σ s
  T* grad = nullptr;                ///< np: the mean gradient plus the penalty's (null: loss only)
  double* epoch = nullptr;          ///< 2: Σ s·l and Σ s over the epoch's batches
  T l2 = 0, l1 = 0;                 ///< objective::penalty_grad factors

  DLOPT_HD int64_t np() const { return K * d + K; }
  DLOPT_HD int64_t row(int64_t j) const { return idx ? int64_t(idx[offset + j]) : offset + j; }
  DLOPT_HD T weight(int64_t r) const { return sw ? sw[r] : T(1); }
};

/// Lane `lane`'s share of x·w.
template <class T>
DLOPT_HD T dot_lane(const T* x, const T* w, int64_t d, int lane) {
  T acc = 0;
  for (int64_t f = lane; f < d; f += kWarp) acc += x[f] * w[f];
  return acc;
}

/// The xor butterfly of the forward warp, on the host: v[0..32) is replaced by the sums every lane
/// ends with (`a += shfl_xor(a, off)` for off = 16, 8, 4, 2, 1).
template <class T>
void warp_tree(T* v) {
  for (int off = kWarp / 2; off > 0; off /= 2) {
    T next[kWarp];
    for (int l = 0; l < kWarp; ++l) next[l] = v[l] + v[l ^ off];
    for (int l = 0; l < kWarp; ++l) v[l] = next[l];
  }
}

/// Lane 0's work after the warp sums: z_k += b_k, then the row's loss and s·dl/dz.
template <class T>
DLOPT_HD void row_objective(const LinearBatch<T>& a, int64_t j) {
  const int64_t r = a.row(j);
  const T s = a.weight(r);
  T* z = a.Z + j * a.K;
  for (int64_t k = 0; k < a.K; ++k) z[k] += a.b[k];
  T loss;
  if (a.objective == Objective::SquaredError) loss = objective::squared_error(z[0], a.y[r], s, z[0]);
  else if (a.objective == Objective::Logistic) loss = objective::logistic(z[0], a.y[r], s, z[0]);
  else loss = objective::softmax(z, a.K, int64_t(a.y[r]), s);
  a.row_loss[j] = loss;
}

/// One partial thread: range p, extended column c (0..d+2), classes k0 .. k0 + kClassTile.
template <class T>
DLOPT_HD void partial_sum(const LinearBatch<T>& a, int64_t p, int64_t c, int64_t k0) {
  const int64_t d = a.d, K = a.K, stride = a.np() + 2;
  if (c > d && k0 > 0) return;  // loss and weight belong to class tile 0
  const int64_t lo = a.count * p / a.parts, hi = a.count * (p + 1) / a.parts;
  const int64_t kn = K - k0 < kClassTile ? K - k0 : kClassTile;
  double acc[kClassTile] = {};
  for (int64_t j = lo; j < hi; ++j) {
    const int64_t r = a.row(j);
    if (c == d + 1) {
      acc[0] += double(a.row_loss[j]);
    } else if (c == d + 2) {
      acc[0] += double(a.weight(r));
    } else {
      const double x = c < d ? double(a.X[r * d + c]) : 1.0;
      const T* dz = a.Z + j * K + k0;
      for (int64_t kk = 0; kk < kn; ++kk) acc[kk] += double(dz[kk]) * x;
    }
  }
  double* out = a.partials + p * stride;
  if (c > d) {
    out[K * d + (c - d - 1) + K] = acc[0];  // np, np + 1
    return;
  }
  for (int64_t kk = 0; kk < kn; ++kk) out[c < d ? (k0 + kk) * d + c : K * d + k0 + kk] = acc[kk];
}

/// Reduce thread t's in-order sum of output q over the ranges t, t + kReduceThreads, ...
template <class T>
DLOPT_HD double reduce_lane(const LinearBatch<T>& a, int64_t q, int t) {
  const int64_t stride = a.np() + 2;
  double acc = 0;
  for (int64_t p = t; p < a.parts; p += kReduceThreads) acc += a.partials[p * stride + q];
  return acc;
}

/// One level of the reduce block's tree: v[t] += v[t + half] for t < half (half = 128, 64, ..., 1).
DLOPT_HD void tree_level(double* v, int t, int half) {
  if (t < half) v[t] += v[t + half];
}

/// The whole tree on the host (the kernel runs each level between __syncthreads).
inline double block_tree(double* v) {
  for (int half = kReduceThreads / 2; half > 0; half /= 2)
    for (int t = 0; t < half; ++t) tree_level(v, t, half);
  return v[0];
}

/// Apply thread q: the mean gradient of output q plus the penalty's; q == 0 also updates the
/// epoch's sums. A batch of zero total weight leaves a zero gradient (the trainer skips its step).
template <class T>
DLOPT_HD void apply_grad(const LinearBatch<T>& a, int64_t q) {
  const int64_t np = a.np();
  const double weight = a.sums[np + 1];
  if (q == 0 && a.epoch) {
    a.epoch[0] += a.sums[np];
    a.epoch[1] += weight;
  }
  if (!a.grad) return;
  const T inv = weight > 0 ? T(1.0 / weight) : T(0);
  T g = T(a.sums[q]) * inv;
  if (q < a.K * a.d) g += objective::penalty_grad(a.W[q], a.l2, a.l1);
  a.grad[q] = g;
}

}  // namespace dlopt::cuda::detail
