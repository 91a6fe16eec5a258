// The row kernels of the linear models (see row_kernels.hpp): the one-output pass over random rows
// (DLOPT_KERNELs with fixed-order dot products, rows prefetched), Eigen blocks over the caller's
// row-major X for the other passes, and the scores.

#include "row_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "dlopt/core/aligned.hpp"
#include "dlopt/core/device.hpp"
#include "dlopt/models/objective.hpp"

namespace dlopt::detail {

bool parallel_ok(int64_t work) {
#if defined(_OPENMP)
  return work >= kParallelWork && get_num_threads() > 1;
#else
  (void)work;
  return false;
#endif
}

namespace {

// Below this many features a coefficient-wise product beats Eigen's GEMV, whose per-call setup
// dominates tiny problems (the seed example has one feature).
constexpr int64_t kSmallFeatures = 8;

/// Per-thread scratch: gathered rows, their targets and weights, and the decision values.
/// Cache-line aligned, so Eigen's vectorised loops peel the same way on every thread.
template <class T>
struct Scratch {
  AlignedVector<T> x, y, w, z;
};
template <class T>
Scratch<T>& scratch() {
  thread_local Scratch<T> s;
  return s;
}

/// Loss sums and (when gW is set) gradient sums over m contiguous rows:
///   loss += Σ sᵢ lᵢ,  weight += Σ sᵢ,  gW += Σ sᵢ ∂lᵢ/∂zᵢ xᵢᵀ,  gb += Σ sᵢ ∂lᵢ/∂zᵢ.
template <class T>
void block(Objective obj, int64_t d, int64_t K, const T* W, const T* b, const T* X, int64_t m,
           const T* y, const T* sw, T* Z, T* gW, T* gb, double& loss, double& weight) {
  Eigen::Map<const RowMat<T>> Xm(X, m, d);
  double l = 0, ws = 0;
  if (K == 1) {
    Eigen::Map<Vec<T>> z(Z, m);
    Eigen::Map<const Vec<T>> w(W, d);
    if (d < kSmallFeatures) z.noalias() = Xm.lazyProduct(w);  // no GEMV setup per call
    else z.noalias() = Xm * w;
    const T b0 = b[0];
    if (obj == Objective::SquaredError) {
      // A block has at most kSub rows: summed in T (vectorised), then added in double.
      T lb = 0, wb = 0;
      T* __restrict zp = z.data();
      if (sw) {
#pragma omp simd reduction(+ : lb, wb)
        for (int64_t i = 0; i < m; ++i) {
          lb += objective::squared_error(zp[i] + b0, y[i], sw[i], zp[i]);
          wb += sw[i];
        }
      } else {
#pragma omp simd reduction(+ : lb)
        for (int64_t i = 0; i < m; ++i) lb += objective::squared_error(zp[i] + b0, y[i], T(1), zp[i]);
        wb = T(m);
      }
      l += double(lb);
      ws += double(wb);
    } else {
      for (int64_t i = 0; i < m; ++i) {
        const T s = sw ? sw[i] : T(1);
        l += double(objective::logistic(z[i] + b0, y[i], s, z[i]));
        ws += double(s);
      }
    }
    if (gW) {
      Eigen::Map<Vec<T>> g(gW, d);
      if (d < kSmallFeatures) g.noalias() += Xm.transpose().lazyProduct(z);
      else g.noalias() += Xm.transpose() * z;
      gb[0] += z.sum();
    }
  } else {  // Softmax cross-entropy over K classes
    Eigen::Map<RowMat<T>> Zm(Z, m, K);
    Eigen::Map<const RowMat<T>> Wm(W, K, d);
    Zm.noalias() = Xm * Wm.transpose();
    Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> bias(b, K);
    for (int64_t i = 0; i < m; ++i) {
      const T s = sw ? sw[i] : T(1);
      Zm.row(i) += bias;
      l += double(objective::softmax(Z + i * K, K, int64_t(y[i]), s));
      ws += double(s);
    }
    if (gW) {
      Eigen::Map<RowMat<T>>(gW, K, d).noalias() += Zm.transpose() * Xm;
      Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(gb, K) += Zm.colwise().sum();
    }
  }
  loss += l;
  weight += ws;
}

// Gathering random rows is bound by memory latency. Prefetching at two distances keeps more lines
// in flight than the L1 fill buffers alone allow: rows ~40 KB ahead into L2, ~4 KB ahead into L1.
constexpr int64_t kNearBytes = 4 << 10, kFarBytes = 40 << 10;

/// The two prefetch distances, in rows (10 and 102 for rows of 100 floats).
std::pair<int64_t, int64_t> prefetch_distances(int64_t row_bytes) {
  const int64_t near = std::max<int64_t>(1, kNearBytes / row_bytes);
  return {near, std::max(near + 1, kFarBytes / row_bytes)};
}

/// Prefetches row r of X, its target and weight (Locality: __builtin_prefetch's, 3 = L1, 1 = L2).
/// Always inlined: as a function of its own GCC finds it free of side effects and drops the call.
template <int Locality, class T>
[[gnu::always_inline]] inline void prefetch_row(const DataView<T>& data, int64_t r, int64_t row_bytes) {
  if (r < 0) return;
  const char* p = reinterpret_cast<const char*>(data.X + r * data.n_features);
  for (int64_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(p + off, 0, Locality);
  __builtin_prefetch(p + row_bytes - 1, 0, Locality);  // a row may end in one more line
  __builtin_prefetch(data.y + r, 0, Locality);
  if (data.sample_weight) __builtin_prefetch(data.sample_weight + r, 0, Locality);
}

/// The lanes of a row's dot product x·w: one 64-byte line of T (16 floats, 8 doubles). Feature j is
/// multiplied into lane j % kLanes<T>, then the lanes are added pairwise (8, 4, 2, 1 for floats). The
/// order is written out, not left to the vectorizer (the library compiles with -ffp-contract=off and
/// without -ffast-math), so every x86-64 level's clone (one AVX-512 register, two AVX2 or four SSE2
/// ones) computes the same bits.
template <class T>
constexpr int kLanes = 64 / int(sizeof(T));

/// Adds the lanes pairwise into acc[0].
template <class T>
[[gnu::always_inline]] inline T combine_lanes(T* acc) {
  for (int h = kLanes<T> / 2; h > 0; h /= 2)
    for (int l = 0; l < h; ++l) acc[l] += acc[l + h];
  return acc[0];
}

/// Per row of `set` (random rows prefetched, read straight from X, never copied): z = x·w + b, the
/// loss s·l, and (when gW is set) g += s·dl/dz · x; loss, weight, gW and gb receive the sums. `Dot`
/// and `Axpy` are the row's x·w and g += a·x.
template <class T, class Dot, class Axpy>
[[gnu::always_inline]] inline void each_row(Objective obj, const DataView<T>& data, const RowSet& set, T b,
                                            bool gradient, Dot dot, Axpy axpy, T& g_bias, double& loss,
                                            double& weight) {
  const int64_t d = data.n_features, row_bytes = d * int64_t(sizeof(T));
  const auto [near, far] = prefetch_distances(row_bytes);
  const T* __restrict sw = data.sample_weight;
  double l = 0, ws = 0;
  for (int64_t j = 0; j < set.count; ++j) {
    int64_t r = set.offset + j;
    if (set.idx) {
      prefetch_row<1>(data, set.row_ahead(j, far), row_bytes);
      prefetch_row<3>(data, set.row_ahead(j, near), row_bytes);
      r = set.idx[r];
    }
    const T* __restrict x = data.X + r * d;
    const T z = dot(x) + b, s = sw ? sw[r] : T(1);
    T dz;
    l += double(obj == Objective::SquaredError ? objective::squared_error(z, data.y[r], s, dz)
                                               : objective::logistic(z, data.y[r], s, dz));
    ws += double(s);
    if (gradient) {
      axpy(dz, x);
      g_bias += dz;
    }
  }
  loss += l;
  weight += ws;
}

/// The one-output pass for rows of Chunks whole 64-byte lines plus a tail (< 64 bytes): w, g and the
/// lanes are fixed-size arrays the compiler keeps in SIMD registers, each line of the row added into
/// the lanes in order, then the lanes combined, then the tail's products added one by one.
template <class T, int Chunks>
DLOPT_KERNEL void fused_rows(Objective obj, const DataView<T>& data, const RowSet& set, const T* __restrict W,
                             T b, T* __restrict gW, T* gb, double& loss, double& weight) {
  constexpr int L = kLanes<T>, kHead = Chunks * L;
  const int64_t tail = data.n_features - kHead;
  T w[kHead], g[kHead] = {}, w_tail[L] = {}, g_tail[L] = {}, g_bias = 0;
  for (int k = 0; k < kHead; ++k) w[k] = W[k];
  for (int64_t k = 0; k < tail; ++k) w_tail[k] = W[kHead + k];
  auto dot = [&](const T* __restrict x) __attribute__((always_inline)) {
    T acc[L] = {};
    for (int c = 0; c < kHead; c += L)
      for (int l = 0; l < L; ++l) acc[l] += x[c + l] * w[c + l];
    T z = combine_lanes<T>(acc);
    for (int64_t k = 0; k < tail; ++k) z += x[kHead + k] * w_tail[k];
    return z;
  };
  auto axpy = [&](T a, const T* __restrict x) __attribute__((always_inline)) {
    for (int k = 0; k < kHead; ++k) g[k] += a * x[k];
    for (int64_t k = 0; k < tail; ++k) g_tail[k] += a * x[kHead + k];
  };
  each_row(obj, data, set, b, gW != nullptr, dot, axpy, g_bias, loss, weight);
  if (!gW) return;
  for (int k = 0; k < kHead; ++k) gW[k] += g[k];
  for (int64_t k = 0; k < tail; ++k) gW[kHead + k] += g_tail[k];
  gb[0] += g_bias;
}

/// The same for rows of any length (under one line, or over kMaxChunks lines): w and g stay in
/// memory (L1), the lanes take every full line in order, then the partial last line.
template <class T>
DLOPT_KERNEL void any_rows(Objective obj, const DataView<T>& data, const RowSet& set, const T* __restrict W, T b,
                           T* __restrict gW, T* gb, double& loss, double& weight) {
  constexpr int L = kLanes<T>;
  const int64_t d = data.n_features;
  T g_bias = 0;
  auto dot = [&](const T* __restrict x) __attribute__((always_inline)) {
    T acc[L] = {};
    int64_t j = 0;
    for (; j + L <= d; j += L)
      for (int l = 0; l < L; ++l) acc[l] += x[j + l] * W[j + l];
    for (int l = 0; j + l < d; ++l) acc[l] += x[j + l] * W[j + l];
    return combine_lanes<T>(acc);
  };
  auto axpy = [&](T a, const T* __restrict x) __attribute__((always_inline)) {
    for (int64_t k = 0; k < d; ++k) gW[k] += a * x[k];
  };
  each_row(obj, data, set, b, gW != nullptr, dot, axpy, g_bias, loss, weight);
  if (gW) gb[0] += g_bias;
}

/// Rows of 1 .. kMaxChunks whole lines plus a tail (16 .. 271 floats, 8 .. 135 doubles) have a
/// fused_rows kernel; others take any_rows.
constexpr int kMaxChunks = 16;

/// The one-output pass for the row length of `data`.
template <class T, int Chunks = 1>
void one_output_rows(Objective obj, const DataView<T>& data, const RowSet& set, const T* W, T b, T* gW, T* gb,
                     double& loss, double& weight) {
  if constexpr (Chunks > kMaxChunks) {
    any_rows(obj, data, set, W, b, gW, gb, loss, weight);
  } else {
    if (data.n_features / kLanes<T> != Chunks) {
      if (Chunks == 1 && data.n_features < kLanes<T>) return any_rows(obj, data, set, W, b, gW, gb, loss, weight);
      return one_output_rows<T, Chunks + 1>(obj, data, set, W, b, gW, gb, loss, weight);
    }
    fused_rows<T, Chunks>(obj, data, set, W, b, gW, gb, loss, weight);
  }
}

}  // namespace

/// Loss and gradient sums over the rows of `set`: random rows of one-output objectives row by row
/// (one_output_rows: the mini-batch epochs), other rows (full-batch passes, softmax) with `block`,
/// gathering non-contiguous rows kSub at a time.
template <class T>
void rows_pass(Objective obj, int64_t d, int64_t K, const T* W, const T* b, const DataView<T>& data,
               const RowSet& set, T* gW, T* gb, double& loss, double& weight) {
  if (set.idx && K == 1 && gW) return one_output_rows(obj, data, set, W, b[0], gW, gb, loss, weight);
  Scratch<T>& s = scratch<T>();
  s.z.resize(std::size_t(kSub * K));
  for (int64_t start = 0; start < set.count; start += kSub) {
    const int64_t m = std::min(kSub, set.count - start);
    if (!set.idx) {
      const int64_t r0 = set.offset + start;
      block(obj, d, K, W, b, data.X + r0 * d, m, data.y + r0,
            data.sample_weight ? data.sample_weight + r0 : nullptr, s.z.data(), gW, gb, loss, weight);
      continue;
    }
    s.x.resize(std::size_t(kSub * d));
    s.y.resize(std::size_t(kSub));
    if (data.sample_weight) s.w.resize(std::size_t(kSub));
    const uint32_t* idx = set.idx + set.offset + start;
    const int64_t row_bytes = d * int64_t(sizeof(T));
    const auto [near, far] = prefetch_distances(row_bytes);
    for (int64_t j = 0; j < m; ++j) {
      prefetch_row<1>(data, set.row_ahead(start + j, far), row_bytes);
      prefetch_row<3>(data, set.row_ahead(start + j, near), row_bytes);
      const int64_t r = idx[j];
      std::memcpy(s.x.data() + j * d, data.X + r * d, std::size_t(row_bytes));
      s.y[j] = data.y[r];
      if (data.sample_weight) s.w[j] = data.sample_weight[r];
    }
    block(obj, d, K, W, b, s.x.data(), m, s.y.data(), data.sample_weight ? s.w.data() : nullptr,
          s.z.data(), gW, gb, loss, weight);
  }
}

namespace {

/// The softmax cross-entropy sums of `class_block` over m contiguous rows, with the exponentials and
/// logarithms of the whole block vectorised (Eigen's exp / log, the logits column-major so that
/// every step runs down the rows) instead of objective::softmax row by row: the same formula,
/// rounded differently. Only the full-batch evaluations of L-BFGS (loss_and_gradient) use it; the
/// epochs keep objective::softmax, which the CUDA kernels share.
template <class T>
void softmax_block(int64_t d, int64_t K, const T* W, const T* b, const T* X, int64_t m, const T* y,
                   const T* sw, T* Z, T* gW, T* gb, double& loss, double& weight) {
  using ColMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
  Eigen::Map<const RowMat<T>> Xm(X, m, d);
  Eigen::Map<ColMat> Zm(Z, m, K);
  Zm.noalias() = Xm * Eigen::Map<const RowMat<T>>(W, K, d).transpose();
  Vec<T> top = Zm.col(0).array() + b[0];
  Zm.col(0) = top;
  for (int64_t k = 1; k < K; ++k) {
    Zm.col(k).array() += b[k];
    top = top.cwiseMax(Zm.col(k));
  }
  Vec<T> zc(m);  // the true class's logit, shifted
  for (int64_t i = 0; i < m; ++i) zc[i] = Zm(i, int64_t(y[i])) - top[i];
  Vec<T> sum = Vec<T>::Zero(m);
  for (int64_t k = 0; k < K; ++k) {
    Zm.col(k) = (Zm.col(k) - top).array().exp();
    sum += Zm.col(k);
  }
  Vec<T> scale = sum.cwiseInverse();  // dl/dz = s·(softmax − onehot(c))
  const Vec<T> terms = sum.array().log() - zc.array();
  double l = 0, ws = 0;
  if (sw) {
    const Eigen::Map<const Vec<T>> s(sw, m);
    scale.array() *= s.array();
    l = double(s.dot(terms));
    ws = double(s.sum());
  } else {
    l = double(terms.sum());
    ws = double(m);
  }
  for (int64_t k = 0; k < K; ++k) Zm.col(k).array() *= scale.array();
  for (int64_t i = 0; i < m; ++i) Zm(i, int64_t(y[i])) -= sw ? sw[i] : T(1);
  Eigen::Map<RowMat<T>>(gW, K, d).noalias() += Zm.transpose() * Xm;
  Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(gb, K) += Zm.colwise().sum();
  loss += l;
  weight += ws;
}

}  // namespace

template <class T>
void softmax_rows(int64_t d, int64_t K, const T* W, const T* b, const DataView<T>& data, int64_t lo,
                  int64_t hi, T* gW, T* gb, double& loss, double& weight) {
  Scratch<T>& s = scratch<T>();
  s.z.resize(std::size_t(kSub * K));
  for (int64_t r = lo; r < hi; r += kSub) {
    const int64_t m = std::min(kSub, hi - r);
    softmax_block(d, K, W, b, data.X + r * d, m, data.y + r, data.sample_weight ? data.sample_weight + r : nullptr,
                  s.z.data(), gW, gb, loss, weight);
  }
}

template <class T>
double validation_score(Objective obj, int64_t d, int64_t K, const T* coef, const T* intercept,
                        const DataView<T>& data, const std::vector<uint32_t>& rows) {
  const int64_t m = int64_t(rows.size());
  std::vector<T> x(static_cast<std::size_t>(kSub * d)), z(static_cast<std::size_t>(kSub * K));
  Eigen::Map<const RowMat<T>> W(coef, K, d);
  Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> b(intercept, K);
  double ybar = 0, wsum = 0;
  for (uint32_t r : rows) {
    const double s = data.sample_weight ? double(data.sample_weight[r]) : 1.0;
    ybar += s * double(data.y[r]);
    wsum += s;
  }
  ybar /= wsum;
  double num = 0, den = 0, correct = 0;
  for (int64_t start = 0; start < m; start += kSub) {
    const int64_t n = std::min(kSub, m - start);
    for (int64_t j = 0; j < n; ++j)
      std::memcpy(x.data() + j * d, data.X + int64_t(rows[start + j]) * d, std::size_t(d) * sizeof(T));
    Eigen::Map<const RowMat<T>> Xm(x.data(), n, d);
    Eigen::Map<RowMat<T>> Z(z.data(), n, K);
    Z.noalias() = Xm * W.transpose();
    Z.rowwise() += b;
    for (int64_t j = 0; j < n; ++j) {
      const uint32_t r = rows[start + j];
      const double s = data.sample_weight ? double(data.sample_weight[r]) : 1.0;
      const double y = double(data.y[r]);
      if (obj == Objective::SquaredError) {
        num += s * (double(Z(j, 0)) - y) * (double(Z(j, 0)) - y);
        den += s * (y - ybar) * (y - ybar);
      } else {
        Eigen::Index best = 0;
        if (K == 1) best = Z(j, 0) > 0 ? 1 : 0;
        else Z.row(j).maxCoeff(&best);
        correct += s * (double(best) == y);
      }
    }
  }
  if (obj != Objective::SquaredError) return correct / wsum;
  if (den == 0) return num == 0 ? 1.0 : 0.0;  // scikit-learn's force_finite convention
  return 1 - num / den;
}

#define DLOPT_ROW_KERNELS(T)                                                                           \
  template void rows_pass<T>(Objective, int64_t, int64_t, const T*, const T*, const DataView<T>&,       \
                             const RowSet&, T*, T*, double&, double&);                                  \
  template void softmax_rows<T>(int64_t, int64_t, const T*, const T*, const DataView<T>&, int64_t,      \
                                int64_t, T*, T*, double&, double&);                                     \
  template double validation_score<T>(Objective, int64_t, int64_t, const T*, const T*,                  \
                                      const DataView<T>&, const std::vector<uint32_t>&);
DLOPT_ROW_KERNELS(float)
DLOPT_ROW_KERNELS(double)
#undef DLOPT_ROW_KERNELS

}  // namespace dlopt::detail
