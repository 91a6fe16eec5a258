// Linear models: the forward pass, loss and gradient with Eigen over the caller's row-major X, the
// epoch loop with mini-batches of a reshuffled index array, stopping rules, and the closed form.
// The update itself is always an AnyOptimizer step: no optimizer maths lives here.

#include "dlopt/models/linear.hpp"

#include <Eigen/Cholesky>
#include <Eigen/Dense>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstring>
#include <exception>
#include <sstream>
#include <utility>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "common.hpp"
#include "dlopt/core/aligned.hpp"
#include "dlopt/core/step.hpp"
#include "dlopt/models/objective.hpp"

namespace dlopt {
namespace {

template <class T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;

constexpr int64_t kSub = 256;           // rows per gathered / scratch block (cache resident)
constexpr int64_t kMaxParts = 64;       // a batch is summed over at most this many fixed partitions
constexpr int64_t kMinPartRows = 128;   // ... of at least this many rows
// Below this many features a coefficient-wise product beats Eigen's GEMV, whose per-call setup
// dominates tiny problems (the seed example has one feature).
constexpr int64_t kSmallFeatures = 8;
constexpr int64_t kParallelWork = int64_t(1) << 14;  // rows·features·outputs worth a second thread

using detail::lower;
using detail::penalty_value;
using detail::Rng;

bool parallel_ok(int64_t work) {
#if defined(_OPENMP)
  return work >= kParallelWork && get_num_threads() > 1;
#else
  (void)work;
  return false;
#endif
}

#if defined(_OPENMP)
int64_t thread_index() { return omp_get_thread_num(); }
int64_t team_size() { return omp_get_num_threads(); }
#else
int64_t thread_index() { return 0; }
int64_t team_size() { return 1; }
#endif

/// Rows of one step: idx[offset .. offset+count), or the range offset .. offset+count if idx is null.
/// For prefetching, a thread's rows form a stream: its share of this batch, which ends at idx
/// position `stream_end`, then its share of the next batch, `skip` positions further on.
struct RowSet {
  const uint32_t* idx;
  int64_t offset;
  int64_t count;
  int64_t end = 0;  ///< length of idx: rows up to here may be prefetched
  int64_t stream_end = 0;
  int64_t skip = 0;
  /// The row `ahead` places after row j in this thread's stream, or -1 past the end.
  int64_t row_ahead(int64_t j, int64_t ahead) const {
    int64_t pos = offset + j + ahead;
    if (pos >= stream_end) pos += skip;
    return pos < end ? int64_t(idx[pos]) : -1;
  }
};

/// Per-thread scratch: gathered rows, their targets and weights, and the decision values.
/// Cache-line aligned, so Eigen's vectorised loops peel the same way on every thread: the sums, and
/// so the results, do not depend on which thread ran a partition.
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

/// Rows that the fused one-output pass handles: 1 .. kMaxChunks whole 64-byte chunks plus a tail
/// (16 .. 271 floats or 8 .. 135 doubles); other rows are gathered into blocks.
constexpr int kChunkBytes = 64, kMaxChunks = 16;

/// Loss and gradient sums of a one-output objective (squared error, logistic) over the random
/// rows of `set`, read straight from X: per row z = x·w + b, then s·l and g += s·dl/dz · x. No
/// gather copy and no second pass: the row's first Chunks·64 bytes, w and the gradient sum are
/// fixed-size Eigen arrays that stay in SIMD registers; the rest of the row (< 64 bytes) is the
/// tail, done element by element.
template <class T, int Chunks>
void fused_rows(Objective obj, const DataView<T>& data, const RowSet& set, const T* W, T b, T* gW, T* gb,
                double& loss, double& weight) {
  constexpr int kHead = Chunks * kChunkBytes / int(sizeof(T)), kTailMax = kChunkBytes / int(sizeof(T));
  using Head = Eigen::Array<T, kHead, 1>;
  const int64_t d = data.n_features, tail = d - kHead, row_bytes = d * int64_t(sizeof(T));
  const auto [near, far] = prefetch_distances(row_bytes);
  const Head w = Eigen::Map<const Head>(W);
  Head g = Head::Zero();
  T w_tail[kTailMax] = {}, g_tail[kTailMax] = {};
  for (int64_t k = 0; k < tail; ++k) w_tail[k] = W[kHead + k];
  T g_bias = 0;
  double l = 0, ws = 0;
  for (int64_t j = 0; j < set.count; ++j) {
    prefetch_row<1>(data, set.row_ahead(j, far), row_bytes);
    prefetch_row<3>(data, set.row_ahead(j, near), row_bytes);
    const int64_t r = set.idx[set.offset + j];
    const T* x = data.X + r * d;
    const Head x_head = Eigen::Map<const Head>(x);
    T z = (x_head * w).sum();
    for (int64_t k = 0; k < tail; ++k) z += x[kHead + k] * w_tail[k];
    const T s = data.sample_weight ? data.sample_weight[r] : T(1);
    T dz;
    l += double(obj == Objective::SquaredError ? objective::squared_error(z + b, data.y[r], s, dz)
                                               : objective::logistic(z + b, data.y[r], s, dz));
    ws += double(s);
    g += dz * x_head;
    for (int64_t k = 0; k < tail; ++k) g_tail[k] += dz * x[kHead + k];
    g_bias += dz;
  }
  Eigen::Map<Head>(gW) += g;
  for (int64_t k = 0; k < tail; ++k) gW[kHead + k] += g_tail[k];
  gb[0] += g_bias;
  loss += l;
  weight += ws;
}

/// fused_rows for the row length of `data`; false (nothing done) when it has no kernel: rows under
/// 64 bytes, or over kMaxChunks chunks, where block GEMVs do well.
template <class T, int Chunks = 1>
bool fused_rows_for(Objective obj, const DataView<T>& data, const RowSet& set, const T* W, T b, T* gW,
                    T* gb, double& loss, double& weight) {
  if constexpr (Chunks > kMaxChunks) {
    return false;
  } else {
    if (data.n_features * int64_t(sizeof(T)) / kChunkBytes != Chunks)
      return fused_rows_for<T, Chunks + 1>(obj, data, set, W, b, gW, gb, loss, weight);
    fused_rows<T, Chunks>(obj, data, set, W, b, gW, gb, loss, weight);
    return true;
  }
}

/// Loss and gradient sums over the rows of `set`: random rows of one-output objectives with a
/// fused pass, other rows with `block`, gathering non-contiguous rows kSub at a time.
template <class T>
void rows_pass(Objective obj, int64_t d, int64_t K, const T* W, const T* b, const DataView<T>& data,
               const RowSet& set, T* gW, T* gb, double& loss, double& weight) {
  if (set.idx && K == 1 && gW && fused_rows_for(obj, data, set, W, b[0], gW, gb, loss, weight))
    return;
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

/// The softmax cross-entropy sums of `block` over m contiguous rows, with the exponentials and
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

/// Raised inside fit when a loss is not finite; fit rolls back and explains.
struct NonFinite {};

template <class T>
std::string describe_nonfinite(const DataView<T>& data, int64_t epoch, double lr) {
  const int64_t d = data.n_features;
  for (int64_t i = 0; i < data.n_samples; ++i)
    for (int64_t j = 0; j < d; ++j) {
      const T v = data.X[i * d + j];
      if (!std::isfinite(v)) {
        std::ostringstream msg;
        msg << "Input X contains " << (std::isnan(v) ? "NaN" : "infinity") << " (row " << i
            << ", column " << j << ")";
        return msg.str();
      }
    }
  std::ostringstream msg;
  msg << "Training diverged at epoch " << epoch << ": the loss became inf or NaN. Lower lr (now "
      << lr << ") or standardize X (the parameters were restored to their values before fit).";
  return msg.str();
}

}  // namespace

Penalty parse_penalty(const std::string& name) {
  const std::string n = lower(name);
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
struct LinearModel<T>::Work {
  AlignedVector<T> grad;                // n_outputs·n_features coefficients, then n_outputs intercepts
  AlignedVector<T> partials;            // one gradient per partition
  std::vector<double> part_loss, part_weight;
  std::vector<uint32_t> train, val;     // row indices (empty: all rows, in order)
  std::vector<uint32_t> tiles, order;   // block shuffling: the block order, the epoch's row order
  std::vector<T> before, best;          // parameters at the start of fit / at the best validation score
  std::vector<const T*> grads = {nullptr, nullptr};  // the optimizer's argument, reused every step
};

template <class T>
LinearModel<T>::LinearModel(Objective objective, int64_t n_features, int64_t n_outputs, T* coef,
                            T* intercept, TrainConfig config)
    : objective_(objective), n_features_(n_features), n_outputs_(n_outputs), coef_(coef),
      intercept_(intercept), config_(std::move(config)), work_(new Work) {
  if (n_features < 1) throw InvalidArgument("Invalid n_features: must be >= 1");
  if (objective == Objective::Softmax ? n_outputs < 2 : n_outputs != 1)
    throw InvalidArgument("Invalid n_outputs: " + std::to_string(n_outputs) +
                          (objective == Objective::Softmax ? " (softmax needs >= 2 classes)"
                                                           : " (this objective has one output)"));
  if (!coef || !intercept) throw InvalidArgument("Invalid coef / intercept: null buffer");
  config_.validate();
  const std::size_t np = std::size_t(n_outputs * n_features + n_outputs);
  work_->grad.assign(np, T(0));
}

template <class T>
LinearModel<T>::~LinearModel() = default;

template <class T>
void LinearModel<T>::reset_optimizer() {
  optimizer_.reset();
  steps_ = 0;
}

template <class T>
void LinearModel<T>::ensure_optimizer() {
  std::map<std::string, double> h = config_.optimizer_params;
  h["lr"] = config_.lr;
  const StorageOptions& o = config_.optimizer_storage;
  if (optimizer_ && o == storage_ && lower(optimizer_->name()) == lower(config_.optimizer)) {
    for (const auto& [key, value] : h) optimizer_->set(key, value);
    return;
  }
  const int64_t nc = n_outputs_ * n_features_;
  optimizer_ = make_optimizer<T>(config_.optimizer, {{coef_, nc}, {intercept_, n_outputs_}}, h, o);
  storage_ = o;
  steps_ = 0;
}

template <class T>
void LinearModel<T>::check_data(const DataView<T>& data, const char* what) const {
  const std::string w = what;
  if (data.n_samples < 1) throw InvalidArgument(w + ": needs at least 1 sample, got 0");
  if (data.n_features != n_features_)
    throw InvalidArgument(w + ": X has " + std::to_string(data.n_features) +
                          " features, but the model is expecting " + std::to_string(n_features_) +
                          " features as input");
  if (data.n_samples >= int64_t(1) << 32) throw InvalidArgument(w + ": more than 2^32 - 1 rows");
  if (!data.X || !data.y) throw InvalidArgument(w + ": null X or y");
  detail::check_targets(objective_, n_outputs_, data.y, data.sample_weight, data.n_samples);
}

template <class T>
double LinearModel<T>::epoch(const DataView<T>& data, std::vector<uint32_t>& rows, bool shuffle) {
  const int64_t d = n_features_, K = n_outputs_, np = K * d + K;
  const int64_t m = rows.empty() ? data.n_samples : int64_t(rows.size());
  // Batch j is [first(j), first(j + 1)): fixed-size batches, or a fixed count of them (data-parallel).
  const int64_t nb = config_.batches > 0 ? config_.batches
                                         : (config_.batch_size == 0 || config_.batch_size >= m)
                                               ? 1
                                               : (m + config_.batch_size - 1) / config_.batch_size;
  const int64_t B = config_.batches > 0 ? (m + nb - 1) / nb
                                        : (config_.batch_size == 0 || config_.batch_size >= m) ? m : config_.batch_size;
  auto first = [&](int64_t j) { return config_.batches > 0 ? m * j / nb : std::min(m, j * B); };
  Work& w = *work_;
  const uint32_t* idx = rows.empty() ? nullptr : rows.data();
  if (shuffle && nb > 1 && !rows.empty()) {
    idx = detail::shuffle_epoch(rows, config_.shuffle_block, rng_state_, w.tiles, w.order);
  }
  T* grad = w.grad.data();
  const bool intercept = config_.fit_intercept;
  double epoch_loss = 0, epoch_weight = 0;
  // A batch is summed over fixed partitions (each on its own, then added in order), so the result
  // does not depend on the number of threads.
  const int64_t parts = std::clamp<int64_t>(B / kMinPartRows, 1, kMaxParts);
  w.partials.resize(std::size_t(parts * np));
  w.part_loss.resize(std::size_t(parts));
  w.part_weight.resize(std::size_t(parts));
  // Partition p of the batch at `start`, run by a thread that runs partitions [p0, p1) of every
  // batch: its rows continue (for the prefetcher) with the same partitions of the next batch.
  auto part = [&](int64_t start, int64_t count, int64_t p, int64_t n_parts, int64_t p0, int64_t p1) {
    const int64_t lo = count * p / n_parts, hi = count * (p + 1) / n_parts;
    const int64_t stream_end = start + count * p1 / n_parts, next = start + count + count * p0 / n_parts;
    T* g = w.partials.data() + p * np;
    std::fill(g, g + np, T(0));
    w.part_loss[p] = w.part_weight[p] = 0;
    rows_pass(objective_, d, K, coef_, intercept_, data,
              RowSet{idx, start + lo, hi - lo, m, stream_end, next - stream_end}, g, g + K * d,
              w.part_loss[p], w.part_weight[p]);
  };
  // Sums the partitions, adds the penalty's gradient and steps the optimizer. Throws NonFinite.
  auto update = [&](int64_t n_parts) {
    double loss = 0, weight = 0;
    std::copy(w.partials.begin(), w.partials.begin() + np, grad);
    for (int64_t p = 1; p < n_parts; ++p) {
      const T* g = w.partials.data() + p * np;
      for (int64_t k = 0; k < np; ++k) grad[k] += g[k];
    }
    for (int64_t p = 0; p < n_parts; ++p) loss += w.part_loss[p], weight += w.part_weight[p];
    if (reducer_) {  // data-parallel: the sums over every worker's rows
      double sums[2] = {loss, weight};
      reducer_(grad, np, sums);
      loss = sums[0], weight = sums[1];
    }
    if (!std::isfinite(loss)) throw NonFinite{};
    if (!(weight > 0)) return;  // a batch of zero-weight rows: nothing to learn from
    const T inv = T(1.0 / weight);
    for (int64_t k = 0; k < np; ++k) grad[k] *= inv;
    if (config_.penalty != Penalty::None && config_.alpha > 0) {
      const auto [l2, l1] = detail::penalty_coeffs<T>(config_);
      for (int64_t k = 0; k < K * d; ++k) grad[k] += objective::penalty_grad(coef_[k], l2, l1);
    }
    w.grads[0] = grad;
    w.grads[1] = intercept ? grad + K * d : nullptr;
    optimizer_->step(w.grads);
    ++steps_;
    epoch_loss += loss;
    epoch_weight += weight;
  };
  auto batch_parts = [&](int64_t count) { return std::clamp<int64_t>(count / kMinPartRows, 1, kMaxParts); };

  const bool parallel = parts > 1 && parallel_ok(B * d * K);
  if (parallel && nb > 1) {
    // One parallel region for the whole epoch (not one per batch): the threads split each batch's
    // partitions, then the last one done steps the optimizer while the others wait.
    std::exception_ptr error;
    bool stop = false;
    std::atomic<int64_t> arrived{0};
#pragma omp parallel num_threads(get_num_threads())
    for (int64_t j = 0; j < nb && !stop; ++j) {
      const int64_t start = first(j), count = first(j + 1) - start, n_parts = batch_parts(count);
      const int64_t t = thread_index(), threads = team_size();
      const int64_t p0 = n_parts * t / threads, p1 = n_parts * (t + 1) / threads;
      for (int64_t p = p0; p < p1; ++p) part(start, count, p, n_parts, p0, p1);
      // The last thread done steps the optimizer (it sees every partial sum: acq_rel) while the
      // others already wait at the barrier, which then publishes `stop` and the new parameters.
      if (arrived.fetch_add(1, std::memory_order_acq_rel) == threads - 1) {
        try {
          update(n_parts);
        } catch (...) {
          error = std::current_exception();
          stop = true;
        }
        arrived.store(0, std::memory_order_relaxed);
      }
#pragma omp barrier
    }
    if (error) std::rethrow_exception(error);
  } else {  // one batch (its optimizer step may use every thread), or too little work to share
    for (int64_t j = 0; j < nb; ++j) {
      const int64_t start = first(j), count = first(j + 1) - start, n_parts = batch_parts(count);
      if (parallel) {
#pragma omp parallel for schedule(static) num_threads(get_num_threads())
        for (int64_t p = 0; p < n_parts; ++p) part(start, count, p, n_parts, p, p + 1);
      } else {  // no OpenMP call at all: tiny problems (the seed example) pay per epoch for one
        for (int64_t p = 0; p < n_parts; ++p) part(start, count, p, n_parts, 0, n_parts);
      }
      update(n_parts);
    }
  }
  double l1 = 0, l2 = 0;
  if (config_.penalty != Penalty::None)
    for (int64_t k = 0; k < K * d; ++k) l1 += std::abs(double(coef_[k])), l2 += double(coef_[k]) * coef_[k];
  return epoch_loss / epoch_weight + penalty_value(config_.penalty, config_.alpha, config_.l1_ratio, l1, l2);
}

template <class T>
double LinearModel<T>::score(const DataView<T>& data, const std::vector<uint32_t>& rows) const {
  const int64_t d = n_features_, K = n_outputs_, m = int64_t(rows.size());
  std::vector<T> x(static_cast<std::size_t>(kSub * d)), z(static_cast<std::size_t>(kSub * K));
  Eigen::Map<const RowMat<T>> W(coef_, K, d);
  Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> b(intercept_, K);
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
      if (objective_ == Objective::SquaredError) {
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
  if (objective_ != Objective::SquaredError) return correct / wsum;
  if (den == 0) return num == 0 ? 1.0 : 0.0;  // scikit-learn's force_finite convention
  return 1 - num / den;
}

template <class T>
int64_t LinearModel<T>::fit(const DataView<T>& data, const EpochCallback& callback) {
  if (lower(config_.optimizer) == "lbfgs") return fit_lbfgs(data, callback);  // not a rule: its own loop
  check_data(data, "fit");
  config_.validate();
  const int64_t n = data.n_samples, K = n_outputs_, d = n_features_, np = K * d + K;
  Work& w = *work_;
  Rng rng = detail::fit_rng(config_.seed);

  // Rows: a validation split for early stopping, an index array to shuffle, or all rows in place.
  w.train.clear();
  w.val.clear();
  if (config_.early_stopping) {
    std::vector<uint32_t> all(static_cast<std::size_t>(n));
    for (int64_t i = 0; i < n; ++i) all[i] = uint32_t(i);
    rng.shuffle(all.data(), n);
    if (objective_ == Objective::SquaredError) {
      const int64_t nv = int64_t(std::ceil(config_.validation_fraction * double(n)));
      w.val.assign(all.begin(), all.begin() + nv);
      w.train.assign(all.begin() + nv, all.end());
    } else {  // stratified: the same fraction of every class
      std::vector<std::vector<uint32_t>> by_class(static_cast<std::size_t>(std::max<int64_t>(K, 2)));
      for (uint32_t r : all) by_class[std::size_t(data.y[r])].push_back(r);
      for (const auto& rows : by_class) {
        const auto nv = std::size_t(std::ceil(config_.validation_fraction * double(rows.size())));
        w.val.insert(w.val.end(), rows.begin(), rows.begin() + std::min(nv, rows.size()));
        w.train.insert(w.train.end(), rows.begin() + std::min(nv, rows.size()), rows.end());
      }
      std::sort(w.val.begin(), w.val.end());
      std::sort(w.train.begin(), w.train.end());
    }
    if (w.val.empty() || w.train.empty())
      throw InvalidArgument("Invalid validation_fraction: " + std::to_string(config_.validation_fraction) +
                            " leaves an empty training or validation set with " +
                            std::to_string(n) + " samples");
    double wt = 0;
    for (uint32_t r : w.train) wt += data.sample_weight ? double(data.sample_weight[r]) : 1.0;
    double wv = 0;
    for (uint32_t r : w.val) wv += data.sample_weight ? double(data.sample_weight[r]) : 1.0;
    if (!(wt > 0) || !(wv > 0))
      throw InvalidArgument("Invalid sample_weight: zero total weight in the training or validation split");
  } else if (config_.shuffle && ((config_.batch_size > 0 && config_.batch_size < n) || config_.batches > 1)) {
    w.train.resize(std::size_t(n));
    for (int64_t i = 0; i < n; ++i) w.train[i] = uint32_t(i);
  }
  rng_state_ = rng.next();

  // The lr of every epoch of this call, checked before anything trains.
  const int64_t first_epoch = epochs_trained();
  const std::vector<double> lrs = detail::epoch_lrs(config_, first_epoch, schedule_length_);
  ensure_optimizer();

  // Snapshot for rollback on error.
  w.before.assign(coef_, coef_ + K * d);
  w.before.insert(w.before.end(), intercept_, intercept_ + K);
  const std::size_t curve_before = loss_curve_.size();
  validation_scores_.clear();

  const bool plateau = !std::isnan(config_.tol) && !config_.early_stopping;
  const double tol = std::isnan(config_.tol) ? 0.0 : config_.tol;
  double best = config_.early_stopping ? -std::numeric_limits<double>::infinity()
                                       : std::numeric_limits<double>::infinity();
  int64_t no_improvement = 0, run = 0;
  double lr_now = config_.lr;  // what ensure_optimizer set
  try {
    for (int64_t e = 0; e < config_.epochs; ++e) {
      if (lrs[std::size_t(e)] != lr_now) optimizer_->set("lr", lr_now = lrs[std::size_t(e)]);
      const double loss = epoch(data, w.train, config_.shuffle);
      if (!std::isfinite(loss)) throw NonFinite{};
      loss_curve_.push_back(loss);
      lr_curve_.push_back(lrs[std::size_t(e)]);
      ++run;
      double val = std::numeric_limits<double>::quiet_NaN();
      bool stop = false;
      if (config_.early_stopping) {
        val = score(data, w.val);
        if (!std::isfinite(val)) throw NonFinite{};
        validation_scores_.push_back(val);
        no_improvement = val < best + tol ? no_improvement + 1 : 0;
        if (val > best) {
          best = val;
          w.best.assign(coef_, coef_ + K * d);
          w.best.insert(w.best.end(), intercept_, intercept_ + K);
        }
        stop = no_improvement >= config_.n_iter_no_change;
      } else if (plateau) {
        no_improvement = loss > best - tol ? no_improvement + 1 : 0;
        best = std::min(best, loss);
        stop = no_improvement >= config_.n_iter_no_change;
      }
      if (callback && callback({int64_t(loss_curve_.size()), loss, val})) stop = true;
      if (stop) break;
    }
  } catch (const NonFinite&) {
    std::copy(w.before.begin(), w.before.begin() + K * d, coef_);
    std::copy(w.before.begin() + K * d, w.before.end(), intercept_);
    loss_curve_.resize(curve_before);
    lr_curve_.resize(curve_before);
    reset_optimizer();  // its moments were computed from non-finite values
    throw InvalidArgument(describe_nonfinite(data, int64_t(curve_before) + run + 1, lrs[std::size_t(run)]));
  }
  if (config_.early_stopping && !w.best.empty()) {  // keep the parameters of the best epoch
    std::copy(w.best.begin(), w.best.begin() + K * d, coef_);
    std::copy(w.best.begin() + K * d, w.best.begin() + np, intercept_);
  }
  return run;
}

template <class T>
void LinearModel<T>::partial_fit(const DataView<T>& data) {
  if (lower(config_.optimizer) == "lbfgs")
    throw InvalidArgument("partial_fit: optimizer 'lbfgs' is a full-batch method; use fit");
  TrainConfig saved = config_;
  schedule_length_ = config_.epochs;
  config_.epochs = 1;
  config_.early_stopping = false;
  config_.tol = std::numeric_limits<double>::quiet_NaN();
  try {
    fit(data);
  } catch (...) {
    config_ = saved;
    schedule_length_ = 0;
    throw;
  }
  config_ = saved;
  schedule_length_ = 0;
}

template <class T>
double LinearModel<T>::loss(const DataView<T>& data) const {
  check_data(data, "loss");
  const int64_t d = n_features_, K = n_outputs_, n = data.n_samples;
  const int64_t parts = std::clamp<int64_t>(n / kMinPartRows, 1, kMaxParts);
  std::vector<double> pl(std::size_t(parts), 0.0), pw(std::size_t(parts), 0.0);
  auto part = [&](int64_t p) {
    const int64_t lo = n * p / parts, hi = n * (p + 1) / parts;
    rows_pass<T>(objective_, d, K, coef_, intercept_, data, RowSet{nullptr, lo, hi - lo}, nullptr,
                 nullptr, pl[p], pw[p]);
  };
  if (parts > 1 && parallel_ok(n * d * K)) {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < parts; ++p) part(p);
  } else {
    for (int64_t p = 0; p < parts; ++p) part(p);
  }
  double l = 0, wsum = 0;
  for (int64_t p = 0; p < parts; ++p) l += pl[p], wsum += pw[p];
  double l1 = 0, l2 = 0;
  for (int64_t k = 0; k < K * d; ++k) l1 += std::abs(double(coef_[k])), l2 += double(coef_[k]) * coef_[k];
  return l / wsum + penalty_value(config_.penalty, config_.alpha, config_.l1_ratio, l1, l2);
}

template <class T>
double LinearModel<T>::loss_and_gradient(const DataView<T>& data, T* grad_coef, T* grad_intercept) const {
  check_data(data, "loss_and_gradient");
  const int64_t d = n_features_, K = n_outputs_, n = data.n_samples, np = K * d + K;
  const int64_t parts = std::clamp<int64_t>(n / kMinPartRows, 1, kMaxParts);
  Work& w = *work_;
  w.partials.assign(std::size_t(parts * np), T(0));
  w.part_loss.assign(std::size_t(parts), 0.0);
  w.part_weight.assign(std::size_t(parts), 0.0);
  auto part = [&](int64_t p) {
    const int64_t lo = n * p / parts, hi = n * (p + 1) / parts;
    T* g = w.partials.data() + p * np;
    if (objective_ != Objective::Softmax) {
      rows_pass<T>(objective_, d, K, coef_, intercept_, data, RowSet{nullptr, lo, hi - lo}, g, g + K * d,
                   w.part_loss[p], w.part_weight[p]);
      return;
    }
    Scratch<T>& s = scratch<T>();
    s.z.resize(std::size_t(kSub * K));
    for (int64_t r = lo; r < hi; r += kSub) {
      const int64_t m = std::min(kSub, hi - r);
      softmax_block(d, K, coef_, intercept_, data.X + r * d, m, data.y + r,
                    data.sample_weight ? data.sample_weight + r : nullptr, s.z.data(), g, g + K * d,
                    w.part_loss[p], w.part_weight[p]);
    }
  };
  if (parts > 1 && parallel_ok(n * d * K)) {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < parts; ++p) part(p);
  } else {
    for (int64_t p = 0; p < parts; ++p) part(p);
  }
  T* grad = w.partials.data();  // partition 0 accumulates the others, in order
  for (int64_t p = 1; p < parts; ++p) {
    const T* g = w.partials.data() + p * np;
    for (int64_t k = 0; k < np; ++k) grad[k] += g[k];
  }
  double l = 0, wsum = 0;
  for (int64_t p = 0; p < parts; ++p) l += w.part_loss[p], wsum += w.part_weight[p];
  const T inv = T(1.0 / wsum);
  const auto [l2, l1] = detail::penalty_coeffs<T>(config_);
  double pen1 = 0, pen2 = 0;
  for (int64_t k = 0; k < K * d; ++k) {
    grad_coef[k] = grad[k] * inv + objective::penalty_grad(coef_[k], l2, l1);
    pen1 += std::abs(double(coef_[k])), pen2 += double(coef_[k]) * coef_[k];
  }
  if (grad_intercept)
    for (int64_t k = 0; k < K; ++k) grad_intercept[k] = grad[K * d + k] * inv;
  return l / wsum + penalty_value(config_.penalty, config_.alpha, config_.l1_ratio, pen1, pen2);
}

template <class T>
void LinearModel<T>::decision_function(const T* X, int64_t n, T* out) const {
  const int64_t d = n_features_, K = n_outputs_;
  Eigen::Map<const RowMat<T>> W(coef_, K, d);
  Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>> b(intercept_, K);
  constexpr int64_t kRows = 4096;
  const int64_t blocks = (n + kRows - 1) / kRows;
  auto run = [&](int64_t k) {
    const int64_t lo = k * kRows, m = std::min(kRows, n - lo);
    Eigen::Map<const RowMat<T>> Xm(X + lo * d, m, d);
    Eigen::Map<RowMat<T>> Z(out + lo * K, m, K);
    if (K == 1) Z.col(0).noalias() = Xm * W.row(0).transpose();
    else Z.noalias() = Xm * W.transpose();
    Z.rowwise() += b;
  };
  if (blocks > 1 && parallel_ok(n * d * K)) {
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < blocks; ++k) run(k);
  } else {
    for (int64_t k = 0; k < blocks; ++k) run(k);
  }
}

// ---- closed form ------------------------------------------------------------------------------

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
  if (data.sample_weight)
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(data.sample_weight[i]) || data.sample_weight[i] < 0)
        throw InvalidArgument("Invalid sample_weight: must be finite and >= 0 (row " +
                              std::to_string(i) + ")");
  // Shift by the first row (exact centering comes later): keeps the sums of squares small when
  // the columns have large means, so nothing cancels catastrophically.
  VecD shift = VecD::Zero(d);
  double yshift = 0;
  if (config.fit_intercept) {
    for (int64_t j = 0; j < d; ++j) shift[j] = double(data.X[j]);
    yshift = double(data.y[0]);
  }
  constexpr int64_t kRowsPerBlock = 512;
  const int64_t parts = std::clamp<int64_t>((n + 4095) / 4096, 1, 16);
  std::vector<Mat> A(std::size_t(parts), Mat::Zero(d, d));
  std::vector<VecD> Xty(std::size_t(parts), VecD::Zero(d)), xsum(std::size_t(parts), VecD::Zero(d));
  std::vector<double> ysum(std::size_t(parts), 0.0), wsum(std::size_t(parts), 0.0);
  auto part = [&](int64_t p) {
    const int64_t lo = n * p / parts, hi = n * (p + 1) / parts;
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> Bm(kRowsPerBlock, d);
    VecD yb(kRowsPerBlock);
    VecD rs(kRowsPerBlock);
    for (int64_t start = lo; start < hi; start += kRowsPerBlock) {
      const int64_t m = std::min(kRowsPerBlock, hi - start);
      Eigen::Map<const RowMat<T>> Xb(data.X + start * d, m, d);
      Eigen::Map<const Vec<T>> ybT(data.y + start, m);
      Bm.topRows(m) = Xb.template cast<double>().rowwise() - shift.transpose();
      yb.head(m) = ybT.template cast<double>().array() - yshift;
      if (data.sample_weight) {  // rows scaled by √s: then BᵀB = Σ s (x−c)(x−c)ᵀ
        rs.head(m) = Eigen::Map<const Vec<T>>(data.sample_weight + start, m).template cast<double>().cwiseSqrt();
        Bm.topRows(m) = rs.head(m).asDiagonal() * Bm.topRows(m);
        yb.head(m).array() *= rs.head(m).array();
        xsum[p].noalias() += Bm.topRows(m).transpose() * rs.head(m);
        ysum[p] += yb.head(m).dot(rs.head(m));
        wsum[p] += rs.head(m).squaredNorm();
      } else {
        xsum[p] += Bm.topRows(m).colwise().sum().transpose();
        ysum[p] += yb.head(m).sum();
        wsum[p] += double(m);
      }
      auto Bs = Bm.topRows(m);
      A[p].template selfadjointView<Eigen::Lower>().rankUpdate(Bs.transpose());
      Xty[p].noalias() += Bs.transpose() * yb.head(m);
    }
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
    std::string msg = "Input X or y contains NaN or infinity";
    for (int64_t i = 0; i < n * d; ++i)
      if (!std::isfinite(data.X[i])) {
        msg = "Input X contains " + std::string(std::isnan(data.X[i]) ? "NaN" : "infinity") +
              " (row " + std::to_string(i / d) + ", column " + std::to_string(i % d) + ")";
        break;
      }
    throw InvalidArgument(msg);
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

template class LinearModel<float>;
template class LinearModel<double>;
template bool solve_least_squares<float>(const DataView<float>&, const LeastSquaresConfig&, float*, float*);
template bool solve_least_squares<double>(const DataView<double>&, const LeastSquaresConfig&, double*,
                                          double*);

}  // namespace dlopt
