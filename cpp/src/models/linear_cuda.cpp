// dlopt::cuda::LinearTrainer: the host side of GPU training. It mirrors LinearModel::fit's epoch
// loop (the same RNG, row order, schedule and stopping rules, from models/common.hpp) and
// enqueues each batch as cuda::launch_batch + one optimizer step; the maths is on the device.
// Compiled in every build: without CUDA, require_device() throws NotCompiled before anything.

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>
#include <limits>
#include <string>

#include "common.hpp"
#include "dlopt/cuda/linear.hpp"
#include "dlopt/cuda/memory.hpp"
#include "dlopt/cuda/step.hpp"

namespace dlopt::cuda {
namespace {

/// Grows `buf` to at least `bytes` (contents are not kept).
void reserve(std::unique_ptr<Buffer>& buf, std::size_t bytes) {
  if (!buf || buf->bytes() < bytes) {
    buf.reset();
    buf = std::make_unique<Buffer>(bytes < 16 ? 16 : bytes, current_device());
  }
}

template <class T>
T* ptr(const std::unique_ptr<Buffer>& b) { return static_cast<T*>(b->data()); }

struct NonFinite {};

}  // namespace

template <class T>
struct LinearTrainer<T>::State {
  State(Objective o, int64_t d_, int64_t K_, T* w, T* b, TrainConfig c, void* st)
      : objective(o), d(d_), K(K_), coef(w), intercept(b), config(std::move(c)), stream(st) {}
  Objective objective;
  int64_t d, K;
  T* coef;
  T* intercept;
  TrainConfig config;
  void* stream;
  std::unique_ptr<AnyOptimizer<T>> optimizer;
  std::vector<double> loss_curve, lr_curve;
  int64_t steps = 0, schedule_length = 0;
  uint64_t rng_state = 0;
  std::unique_ptr<Buffer> Z, row_loss, partials, sums, grad, epoch, idx, snapshot;
  std::vector<uint32_t> rows, tiles, order;
  std::vector<T> y, sw;  // host copies, for the checks and the zero-weight batches

  int64_t np() const { return K * d + K; }

  void read(void* dst, const void* src, std::size_t bytes) {
    copy_async(dst, src, bytes, stream);
    stream_synchronize(stream);
  }

  void check(const DataView<T>& data, const char* what) {
    require_device();
    const std::string w = what;
    if (data.n_samples < 1) throw InvalidArgument(w + ": needs at least 1 sample, got 0");
    if (data.n_features != d)
      throw InvalidArgument(w + ": X has " + std::to_string(data.n_features) +
                            " features, but the model is expecting " + std::to_string(d) + " features as input");
    if (data.n_samples >= int64_t(1) << 32) throw InvalidArgument(w + ": more than 2^32 - 1 rows");
    if (!data.X || !data.y) throw InvalidArgument(w + ": null X or y");
    const int64_t n = data.n_samples;
    y.resize(std::size_t(n));
    read(y.data(), data.y, std::size_t(n) * sizeof(T));
    sw.clear();
    if (data.sample_weight) {
      sw.resize(std::size_t(n));
      read(sw.data(), data.sample_weight, std::size_t(n) * sizeof(T));
    }
    dlopt::detail::check_targets(objective, K, y.data(), sw.empty() ? nullptr : sw.data(), n);
  }

  /// A batch over the rows [offset, offset + count) of `order` (null: in place).
  detail::LinearBatch<T> batch(const DataView<T>& data, const uint32_t* order, int64_t offset, int64_t count,
                               bool with_grad) {
    detail::LinearBatch<T> a;
    a.X = data.X;
    a.y = data.y;
    a.sw = data.sample_weight;
    a.idx = order;
    a.offset = offset;
    a.count = count;
    a.d = d;
    a.K = K;
    a.objective = objective;
    a.W = coef;
    a.b = intercept;
    a.Z = ptr<T>(Z);
    a.row_loss = ptr<T>(row_loss);
    a.partials = ptr<double>(partials);
    a.parts = detail::batch_parts(count);
    a.sums = ptr<double>(sums);
    a.grad = with_grad ? ptr<T>(grad) : nullptr;
    a.epoch = ptr<double>(epoch);
    std::tie(a.l2, a.l1) = dlopt::detail::penalty_coeffs<T>(config);
    return a;
  }

  void scratch(int64_t rows_per_batch) {
    reserve(Z, std::size_t(rows_per_batch * K) * sizeof(T));
    reserve(row_loss, std::size_t(rows_per_batch) * sizeof(T));
    reserve(partials, std::size_t(detail::batch_parts(rows_per_batch) * (np() + 2)) * sizeof(double));
    reserve(sums, std::size_t(np() + 2) * sizeof(double));
    reserve(grad, std::size_t(np()) * sizeof(T));
    reserve(epoch, 2 * sizeof(double));
  }

  double penalty() {
    if (config.penalty == Penalty::None) return 0;
    std::vector<T> w(std::size_t(K * d));
    read(w.data(), coef, w.size() * sizeof(T));
    double l1 = 0, l2 = 0;
    for (T c : w) l1 += std::abs(double(c)), l2 += double(c) * c;
    return dlopt::detail::penalty_value(config.penalty, config.alpha, config.l1_ratio, l1, l2);
  }

  double run_epoch(const DataView<T>& data) {
    const int64_t m = rows.empty() ? data.n_samples : int64_t(rows.size());
    const int64_t B = (config.batch_size == 0 || config.batch_size >= m) ? m : config.batch_size;
    const uint32_t* host_order = nullptr;
    if (!rows.empty()) {  // shuffled mini-batches: the CPU model's order, uploaded once
      host_order = dlopt::detail::shuffle_epoch(rows, config.shuffle_block, rng_state, tiles, order);
      reserve(idx, std::size_t(m) * sizeof(uint32_t));
      copy_async(ptr<uint32_t>(idx), host_order, std::size_t(m) * sizeof(uint32_t), stream);
    }
    scratch(B);
    fill(ptr<double>(epoch), 2, 0.0, stream);
    const std::vector<const T*> grads = {ptr<T>(grad), config.fit_intercept ? ptr<T>(grad) + K * d : nullptr};
    for (int64_t start = 0; start < m; start += B) {
      const int64_t count = std::min(B, m - start);
      if (!sw.empty()) {  // the CPU skips a batch of zero total weight: so does the GPU
        double w = 0;
        for (int64_t j = 0; j < count; ++j) w += double(sw[host_order ? host_order[start + j] : start + j]);
        if (!(w > 0)) continue;
      }
      launch_batch(batch(data, host_order ? ptr<uint32_t>(idx) : nullptr, start, count, true), stream);
      optimizer->step(grads);
      ++steps;
    }
    double sums_host[2];
    read(sums_host, epoch->data(), sizeof sums_host);
    if (!std::isfinite(sums_host[0])) throw NonFinite{};
    return sums_host[0] / sums_host[1] + penalty();
  }

  void ensure_optimizer() {
    const StorageOptions& o = config.optimizer_storage;
    if ((o.state_dtype != StateDType::Default && o.state_dtype != StateDType::Float32) || o.master_weights)
      throw InvalidArgument("optimizer_params: state_dtype=" + std::string(state_dtype_name(o.state_dtype)) +
                            " and master_weights are CPU-only for now");
    std::map<std::string, double> h = config.optimizer_params;
    h["lr"] = config.lr;
    if (optimizer && dlopt::detail::lower(optimizer->name()) == dlopt::detail::lower(config.optimizer)) {
      for (const auto& [key, value] : h) optimizer->set(key, value);
      return;
    }
    optimizer = make_device_optimizer<T>(config.optimizer, {{coef, K * d}, {intercept, K}}, h, stream);
    steps = 0;
  }
};

template <class T>
LinearTrainer<T>::LinearTrainer(Objective objective, int64_t n_features, int64_t n_outputs, T* coef,
                                T* intercept, TrainConfig config, void* stream)
    : s_(new State{objective, n_features, n_outputs, coef, intercept, std::move(config), stream}) {
  if (n_features < 1) throw InvalidArgument("Invalid n_features: must be >= 1");
  if (objective == Objective::Softmax ? n_outputs < 2 : n_outputs != 1)
    throw InvalidArgument("Invalid n_outputs: " + std::to_string(n_outputs));
  if (!coef || !intercept) throw InvalidArgument("Invalid coef / intercept: null buffer");
  s_->config.validate();
}

template <class T>
LinearTrainer<T>::~LinearTrainer() = default;

template <class T>
int64_t LinearTrainer<T>::fit(const DataView<T>& data, const EpochCallback& callback) {
  State& s = *s_;
  TrainConfig& c = s.config;
  c.validate();
  if (c.early_stopping) throw InvalidArgument("Invalid early_stopping: not supported on the GPU yet");
  s.check(data, "fit");
  const int64_t n = data.n_samples;
  dlopt::detail::Rng rng = dlopt::detail::fit_rng(c.seed);
  s.rows.clear();
  if (c.shuffle && c.batch_size > 0 && c.batch_size < n) {
    s.rows.resize(std::size_t(n));
    for (int64_t i = 0; i < n; ++i) s.rows[std::size_t(i)] = uint32_t(i);
  }
  s.rng_state = rng.next();

  const int64_t first_epoch = int64_t(s.loss_curve.size());
  const std::vector<double> lrs = dlopt::detail::epoch_lrs(c, first_epoch, s.schedule_length);
  s.ensure_optimizer();

  const std::size_t np_bytes = std::size_t(s.np()) * sizeof(T);
  reserve(s.snapshot, np_bytes);  // for the rollback of a diverged fit
  copy_async(ptr<T>(s.snapshot), s.coef, std::size_t(s.K * s.d) * sizeof(T), s.stream);
  copy_async(ptr<T>(s.snapshot) + s.K * s.d, s.intercept, std::size_t(s.K) * sizeof(T), s.stream);
  const std::size_t curve_before = s.loss_curve.size();

  const bool plateau = !std::isnan(c.tol);
  double best = std::numeric_limits<double>::infinity(), lr_now = c.lr;
  int64_t no_improvement = 0, run = 0;
  try {
    for (int64_t e = 0; e < c.epochs; ++e) {
      if (lrs[std::size_t(e)] != lr_now) s.optimizer->set("lr", lr_now = lrs[std::size_t(e)]);
      const double loss = s.run_epoch(data);
      if (!std::isfinite(loss)) throw NonFinite{};
      s.loss_curve.push_back(loss);
      s.lr_curve.push_back(lrs[std::size_t(e)]);
      ++run;
      bool stop = false;
      if (plateau) {
        no_improvement = loss > best - c.tol ? no_improvement + 1 : 0;
        best = std::min(best, loss);
        stop = no_improvement >= c.n_iter_no_change;
      }
      if (callback && callback({int64_t(s.loss_curve.size()), loss, std::numeric_limits<double>::quiet_NaN()}))
        stop = true;
      if (stop) break;
    }
  } catch (const NonFinite&) {
    copy_async(s.coef, ptr<T>(s.snapshot), std::size_t(s.K * s.d) * sizeof(T), s.stream);
    copy_async(s.intercept, ptr<T>(s.snapshot) + s.K * s.d, std::size_t(s.K) * sizeof(T), s.stream);
    stream_synchronize(s.stream);
    s.loss_curve.resize(curve_before);
    s.lr_curve.resize(curve_before);
    reset_optimizer();
    throw InvalidArgument("Training diverged at epoch " + std::to_string(curve_before + std::size_t(run) + 1) +
                          ": the loss became inf or NaN. Check X for NaN or infinity, lower lr (now " +
                          std::to_string(lrs[std::size_t(run)]) +
                          ") or standardize X (the parameters were restored to their values before fit).");
  }
  return run;
}

template <class T>
void LinearTrainer<T>::partial_fit(const DataView<T>& data) {
  State& s = *s_;
  const TrainConfig saved = s.config;
  s.schedule_length = s.config.epochs;
  s.config.epochs = 1;
  s.config.early_stopping = false;  // as LinearModel::partial_fit
  s.config.tol = std::numeric_limits<double>::quiet_NaN();
  try {
    fit(data);
  } catch (...) {
    s.config = saved;
    s.schedule_length = 0;
    throw;
  }
  s.config = saved;
  s.schedule_length = 0;
}

template <class T>
void LinearTrainer<T>::reset_optimizer() {
  s_->optimizer.reset();
  s_->steps = 0;
}

template <class T>
double LinearTrainer<T>::loss(const DataView<T>& data) {
  State& s = *s_;
  s.check(data, "loss");
  constexpr int64_t kRows = int64_t(1) << 16;  // bounded scratch: the loss is summed in slices
  const int64_t rows = std::min(kRows, data.n_samples);
  s.scratch(rows);
  fill(ptr<double>(s.epoch), 2, 0.0, s.stream);
  for (int64_t start = 0; start < data.n_samples; start += rows)
    launch_batch(s.batch(data, nullptr, start, std::min(rows, data.n_samples - start), false), s.stream);
  double sums_host[2];
  s.read(sums_host, s.epoch->data(), sizeof sums_host);
  return sums_host[0] / sums_host[1] + s.penalty();
}

template <class T> const std::vector<double>& LinearTrainer<T>::loss_curve() const { return s_->loss_curve; }
template <class T> const std::vector<double>& LinearTrainer<T>::lr_curve() const { return s_->lr_curve; }
template <class T> int64_t LinearTrainer<T>::steps() const { return s_->steps; }
template <class T> TrainConfig& LinearTrainer<T>::config() { return s_->config; }
template <class T> Objective LinearTrainer<T>::objective() const { return s_->objective; }
template <class T> int64_t LinearTrainer<T>::n_features() const { return s_->d; }
template <class T> int64_t LinearTrainer<T>::n_outputs() const { return s_->K; }

template class LinearTrainer<float>;
template class LinearTrainer<double>;

}  // namespace dlopt::cuda
