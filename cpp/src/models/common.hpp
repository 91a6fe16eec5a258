#pragma once
// Host-side pieces shared by the CPU LinearModel (linear.cpp), the CUDA trainer (linear_cuda.cpp)
// and their one fit loop (fit_loop.cpp): the row shuffle, the batches and each epoch's row order,
// the penalty's value and coefficients, the data checks and their messages. Sharing them is what
// makes the two backends see the same batches and refuse the same inputs in the same words.

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "dlopt/models/linear.hpp"
#include "dlopt/schedule.hpp"

namespace dlopt::detail {

inline std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

/// splitmix64: small, fast and good enough to shuffle rows; seeded per fit for reproducibility.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n) for 0 < n < 2^32 (Lemire's multiply-shift with rejection: no bias).
  uint32_t below(uint32_t n) {
    uint64_t m = (next() >> 32) * uint64_t(n);
    uint32_t low = uint32_t(m);
    if (low < n) {
      const uint32_t threshold = uint32_t(-n) % n;
      while (low < threshold) {
        m = (next() >> 32) * uint64_t(n);
        low = uint32_t(m);
      }
    }
    return uint32_t(m >> 32);
  }
  /// Fisher–Yates: for i = n-1 .. 1 swap a[i] with a[below(i + 1)]. The draws do not depend on the
  /// array, so they are made kAhead swaps early and their targets prefetched: a large array's
  /// random accesses then overlap instead of waiting on memory one by one.
  void shuffle(uint32_t* a, int64_t n) {
    constexpr int64_t kAhead = 16;
    uint32_t ahead[kAhead];
    auto draw = [&](int64_t i) {  // the draw for position i, prefetching its target
      const uint32_t j = below(uint32_t(i + 1));
      __builtin_prefetch(a + j, 1);
      return j;
    };
    for (int64_t k = 0; k < kAhead && n - 1 - k > 0; ++k) ahead[k] = draw(n - 1 - k);
    for (int64_t i = n - 1, k = 0; i > 0; --i, k = (k + 1) % kAhead) {
      const uint32_t j = ahead[k];
      if (i - kAhead > 0) ahead[k] = draw(i - kAhead);
      std::swap(a[i], a[j]);
    }
  }
};

/// The first RNG of a fit, from the configured seed.
inline Rng fit_rng(uint64_t seed) { return Rng{seed * 0x2545F4914F6CDD1Dull + 0x1234567ull}; }

/// Reorders one epoch's rows from `rng_state` (advanced): `rows` is shuffled in place (so each
/// epoch permutes the previous order), or with shuffle_block t > 1 its blocks of t rows are put in
/// a random order into `order`. Returns the epoch's row order.
inline const uint32_t* shuffle_epoch(std::vector<uint32_t>& rows, int64_t shuffle_block,
                                     uint64_t& rng_state, std::vector<uint32_t>& tiles,
                                     std::vector<uint32_t>& order) {
  Rng rng{rng_state};
  const int64_t m = int64_t(rows.size()), t = shuffle_block;
  const uint32_t* idx = rows.data();
  if (t <= 1) {
    rng.shuffle(rows.data(), m);  // every row independently
  } else {  // contiguous blocks of t rows in a random order: sequential memory reads
    const int64_t n_tiles = (m + t - 1) / t;
    tiles.resize(std::size_t(n_tiles));
    for (int64_t k = 0; k < n_tiles; ++k) tiles[k] = uint32_t(k);
    rng.shuffle(tiles.data(), n_tiles);
    order.resize(std::size_t(m));
    int64_t k = 0;
    for (uint32_t tile : tiles)
      for (int64_t j = int64_t(tile) * t, hi = std::min(j + t, m); j < hi; ++j) order[k++] = rows[j];
    idx = order.data();
  }
  rng_state = rng.s;
  return idx;
}

inline double penalty_value(Penalty p, double alpha, double l1_ratio, double l1, double l2sq) {
  switch (p) {
    case Penalty::L2: return alpha * 0.5 * l2sq;
    case Penalty::L1: return alpha * l1;
    case Penalty::ElasticNet: return alpha * (l1_ratio * l1 + (1 - l1_ratio) * 0.5 * l2sq);
    default: return 0;
  }
}

/// The l2 and l1 factors of objective::penalty_grad for a config (both 0 without a penalty).
template <class T>
std::pair<T, T> penalty_coeffs(const TrainConfig& c) {
  if (c.penalty == Penalty::None || !(c.alpha > 0)) return {T(0), T(0)};
  const T a = T(c.alpha);
  const T l2 = c.penalty == Penalty::L2 ? a : c.penalty == Penalty::ElasticNet ? a * T(1 - c.l1_ratio) : T(0);
  const T l1 = c.penalty == Penalty::L1 ? a : c.penalty == Penalty::ElasticNet ? a * T(c.l1_ratio) : T(0);
  return {l2, l1};
}

/// The lr of every epoch of a fit (epochs counted from first_epoch; the schedule's defaults from
/// schedule_length, or config.epochs when 0), checked before anything trains.
inline std::vector<double> epoch_lrs(const TrainConfig& config, int64_t first_epoch, int64_t schedule_length) {
  const ScheduleFn schedule =
      make_schedule(config.lr_schedule, config.lr, schedule_length > 0 ? schedule_length : config.epochs);
  std::vector<double> lrs(std::size_t(config.epochs));
  for (int64_t e = 0; e < config.epochs; ++e) {
    lrs[std::size_t(e)] = schedule(first_epoch + e);
    if (!(lrs[std::size_t(e)] >= 0) || !std::isfinite(lrs[std::size_t(e)]))
      throw InvalidArgument("Invalid lr_schedule: lr " + std::to_string(lrs[std::size_t(e)]) + " at epoch " +
                            std::to_string(first_epoch + e) + " (must be a finite number >= 0)");
  }
  return lrs;
}

/// The checks of y (finite; 0/1 labels; class codes 0..K-1) and sample_weight (dlopt::check_sample_weight,
/// when given), on host memory; throws InvalidArgument naming the first bad row.
template <class T>
void check_targets(Objective objective, int64_t K, const T* y, const T* sw, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T v = y[i];
    if (!std::isfinite(v))
      throw InvalidArgument("Input y contains " + std::string(std::isnan(v) ? "NaN" : "infinity") +
                            " (row " + std::to_string(i) + ")");
    if (objective == Objective::Logistic && v != T(0) && v != T(1))
      throw InvalidArgument("Invalid y: logistic regression needs labels 0 or 1 (row " +
                            std::to_string(i) + ")");
    if (objective == Objective::Softmax && (v < 0 || v >= T(K) || v != std::floor(v)))
      throw InvalidArgument("Invalid y: softmax regression needs class codes 0.." + std::to_string(K - 1) +
                            " (row " + std::to_string(i) + ")");
  }
  if (sw) dlopt::check_sample_weight(sw, n);
}

/// The shape checks of a data set given to a model of d features (`what`: the calling method).
template <class T>
void check_shape(const DataView<T>& data, int64_t d, const char* what) {
  const std::string w = what;
  if (data.n_samples < 1) throw InvalidArgument(w + ": needs at least 1 sample, got 0");
  if (data.n_features != d)
    throw InvalidArgument(w + ": X has " + std::to_string(data.n_features) +
                          " features, but the model is expecting " + std::to_string(d) + " features as input");
  if (data.n_samples >= int64_t(1) << 32) throw InvalidArgument(w + ": more than 2^32 - 1 rows");
  if (!data.X || !data.y) throw InvalidArgument(w + ": null X or y");
}

/// "Input X contains NaN (row i, column j)" for the first non-finite cell of the host matrix X
/// (n × d, row-major), or "" when every cell is finite.
template <class T>
std::string nonfinite_cell(const T* X, int64_t n, int64_t d) {
  for (int64_t i = 0; i < n * d; ++i)
    if (!std::isfinite(X[i]))
      return "Input X contains " + std::string(std::isnan(X[i]) ? "NaN" : "infinity") + " (row " +
             std::to_string(i / d) + ", column " + std::to_string(i % d) + ")";
  return "";
}

/// Raised by an epoch whose loss is not finite; the fit loop rolls back and explains.
struct NonFinite {};

/// Batch j of an epoch over m rows is rows [first(j), first(j + 1)) of the epoch's order: batches
/// of batch_size rows (one batch for full-batch training), or exactly `batches` of them
/// (data-parallel, TrainConfig::batches).
struct BatchPlan {
  int64_t m, count, size;
  bool fixed_count;
  BatchPlan(const TrainConfig& c, int64_t rows) : m(rows), fixed_count(c.batches > 0) {
    const bool full = c.batch_size == 0 || c.batch_size >= m;
    count = fixed_count ? c.batches : full ? 1 : (m + c.batch_size - 1) / c.batch_size;
    size = fixed_count ? (m + count - 1) / count : full ? m : c.batch_size;
  }
  int64_t first(int64_t j) const { return fixed_count ? m * j / count : std::min(m, j * size); }
};

/// One epoch's row order: null (every row, in place) when `rows` is empty, else `rows`, reshuffled
/// (shuffle_epoch) when shuffling and there is more than one batch.
inline const uint32_t* epoch_order(const TrainConfig& c, const BatchPlan& plan, std::vector<uint32_t>& rows,
                                   uint64_t& rng_state, std::vector<uint32_t>& tiles,
                                   std::vector<uint32_t>& order) {
  if (rows.empty()) return nullptr;
  if (c.shuffle && plan.count > 1) return shuffle_epoch(rows, c.shuffle_block, rng_state, tiles, order);
  return rows.data();
}

/// partial_fit on either device: one epoch of `fit` with the schedule counted over the configured
/// epochs, no early stopping and no plateau rule; the config is restored whatever happens.
template <class Fit>
void one_epoch(TrainConfig& config, int64_t& schedule_length, Fit&& fit) {
  const TrainConfig saved = config;
  schedule_length = config.epochs;
  config.epochs = 1;
  config.early_stopping = false;
  config.tol = std::numeric_limits<double>::quiet_NaN();
  try {
    fit();
  } catch (...) {
    config = saved;
    schedule_length = 0;
    throw;
  }
  config = saved;
  schedule_length = 0;
}

}  // namespace dlopt::detail
