// dlopt::cuda::LinearTrainer: the host side of GPU training, the GPU device of the fit loop that
// LinearModel uses too (fit_loop.cpp: the same split, RNG, row order, schedule, stopping rules and
// messages). Its epoch enqueues each batch as cuda::launch_batch + one optimizer step; the maths is on
// the device. Compiled in every build: without CUDA, require_device() throws NotCompiled before anything.

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>
#include <limits>
#include <string>

#include "common.hpp"
#include "fit_loop.hpp"
#include "row_kernels.hpp"
#include "dlopt/cuda/linear.hpp"
#include "dlopt/cuda/memory.hpp"
#include "dlopt/cuda/step.hpp"
#include "dlopt/cuda/support.hpp"

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

}  // namespace

template <class T>
struct LinearTrainer<T>::State final : dlopt::detail::FitBackend<T> {
  State(Objective o, int64_t d_, int64_t K_, T* w, T* b, TrainConfig c, void* st)
      : objective(o), d(d_), K(K_), coef(w), intercept(b), config(std::move(c)), stream(st) {}
  Objective objective;
  int64_t d, K;
  T* coef;
  T* intercept;
  TrainConfig config;
  void* stream;
  std::unique_ptr<AnyOptimizer<T>> optimizer;
  StorageOptions storage;  // the options `optimizer` was made with
  dlopt::detail::FitHistory history;
  int64_t steps = 0;
  std::unique_ptr<Buffer> Z, row_loss, partials, sums, grad, epoch_sums, idx;
  std::vector<uint32_t> tiles, order;
  std::vector<T> y, sw;  // host copies, for the checks and the zero-weight batches
  std::vector<T> host_X;  // a host copy of X, made only to score early stopping or name a bad cell
  const DataView<T>* data = nullptr;  // the data of the running fit

  int64_t np() const { return K * d + K; }

  void read(void* dst, const void* src, std::size_t bytes) {
    copy_async(dst, src, bytes, stream);
    stream_synchronize(stream);
  }

  void check(const DataView<T>& data, const char* what) {
    require_device();
    dlopt::detail::check_shape(data, d, what);
    const int64_t n = data.n_samples;
    y.resize(std::size_t(n));
    read(y.data(), data.y, std::size_t(n) * sizeof(T));
    sw.clear();
    if (data.sample_weight) {
      sw.resize(std::size_t(n));
      read(sw.data(), data.sample_weight, std::size_t(n) * sizeof(T));
    }
    dlopt::detail::check_targets(objective, K, y.data(), sw.empty() ? nullptr : sw.data(), n);
    host_X.clear();
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
    a.epoch = ptr<double>(epoch_sums);
    std::tie(a.l2, a.l1) = dlopt::detail::penalty_coeffs<T>(config);
    return a;
  }

  void scratch(int64_t rows_per_batch) {
    reserve(Z, std::size_t(rows_per_batch * K) * sizeof(T));
    reserve(row_loss, std::size_t(rows_per_batch) * sizeof(T));
    reserve(partials, std::size_t(detail::batch_parts(rows_per_batch) * (np() + 2)) * sizeof(double));
    reserve(sums, std::size_t(np() + 2) * sizeof(double));
    reserve(grad, std::size_t(np()) * sizeof(T));
    reserve(epoch_sums, 2 * sizeof(double));
  }

  double penalty() {
    if (config.penalty == Penalty::None) return 0;
    std::vector<T> w(std::size_t(K * d));
    read(w.data(), coef, w.size() * sizeof(T));
    double l1 = 0, l2 = 0;
    for (T c : w) l1 += std::abs(double(c)), l2 += double(c) * c;
    return dlopt::detail::penalty_value(config.penalty, config.alpha, config.l1_ratio, l1, l2);
  }

  double epoch(std::vector<uint32_t>& rows) override {
    const dlopt::detail::BatchPlan plan(config, rows.empty() ? data->n_samples : int64_t(rows.size()));
    const uint32_t* host_order = dlopt::detail::epoch_order(config, plan, rows, history.rng_state, tiles, order);
    if (host_order) {  // the CPU model's order, uploaded once per epoch
      reserve(idx, std::size_t(plan.m) * sizeof(uint32_t));
      copy_async(ptr<uint32_t>(idx), host_order, std::size_t(plan.m) * sizeof(uint32_t), stream);
    }
    scratch(plan.size);
    fill(ptr<double>(epoch_sums), 2, 0.0, stream);
    const std::vector<const T*> grads = {ptr<T>(grad), config.fit_intercept ? ptr<T>(grad) + K * d : nullptr};
    for (int64_t j = 0; j < plan.count; ++j) {
      const int64_t start = plan.first(j), count = plan.first(j + 1) - start;
      double w = double(count);
      if (!sw.empty()) {  // the CPU skips a batch of zero total weight: so does the GPU
        w = 0;
        for (int64_t r = 0; r < count; ++r) w += double(sw[host_order ? host_order[start + r] : start + r]);
      }
      if (!(w > 0)) continue;
      launch_batch(batch(*data, host_order ? ptr<uint32_t>(idx) : nullptr, start, count, true), stream);
      optimizer->step(grads);
      ++steps;
    }
    double sums_host[2];
    read(sums_host, epoch_sums->data(), sizeof sums_host);
    if (!std::isfinite(sums_host[0])) throw dlopt::detail::NonFinite{};
    return sums_host[0] / sums_host[1] + penalty();
  }

  /// X on the host, copied once per fit when first needed.
  const T* host_data() {
    if (host_X.empty()) {
      host_X.resize(std::size_t(data->n_samples * d));
      read(host_X.data(), data->X, host_X.size() * sizeof(T));
    }
    return host_X.data();
  }

  double score(const std::vector<uint32_t>& rows) override {
    std::vector<T> params;
    save(params);
    const DataView<T> host{host_data(), data->n_samples, d, y.data(), sw.empty() ? nullptr : sw.data()};
    return dlopt::detail::validation_score(objective, d, K, params.data(), params.data() + K * d, host, rows);
  }

  void save(std::vector<T>& params) override {
    params.resize(std::size_t(np()));
    copy_async(params.data(), coef, std::size_t(K * d) * sizeof(T), stream);
    read(params.data() + K * d, intercept, std::size_t(K) * sizeof(T));
  }

  void restore(const std::vector<T>& params) override {
    copy_async(coef, params.data(), std::size_t(K * d) * sizeof(T), stream);
    copy_async(intercept, params.data() + K * d, std::size_t(K) * sizeof(T), stream);
    stream_synchronize(stream);
  }

  std::string bad_input() override { return dlopt::detail::nonfinite_cell(host_data(), data->n_samples, d); }

  void set_lr(double lr) override { optimizer->set("lr", lr); }
  // Schedule-Free: the device optimizer moves the parameters on the device; no-ops for other rules
  void set_train_mode(bool train) override {
    if (optimizer) train ? optimizer->train() : optimizer->eval();
  }

  void reset_optimizer() override {
    optimizer.reset();
    steps = 0;
  }

  void ensure_optimizer() override {
    std::map<std::string, double> h = config.optimizer_params;
    h["lr"] = config.lr;
    const StorageOptions& o = config.optimizer_storage;
    if (optimizer && o == storage && dlopt::detail::lower(optimizer->name()) == dlopt::detail::lower(config.optimizer)) {
      for (const auto& [key, value] : h) optimizer->set(key, value);
      return;
    }
    optimizer = make_device_optimizer<T>(config.optimizer, {{coef, K * d, K}, {intercept, K}}, h, stream, o);  // as the CPU's
    storage = o;
    steps = 0;
  }
};

template <class T>
void check_config(const TrainConfig& config) {
  config.validate();
  require_step(config.optimizer);
}

template void check_config<float>(const TrainConfig&);
template void check_config<double>(const TrainConfig&);

template <class T>
LinearTrainer<T>::LinearTrainer(Objective objective, int64_t n_features, int64_t n_outputs, T* coef,
                                T* intercept, TrainConfig config, void* stream)
    : s_(new State{objective, n_features, n_outputs, coef, intercept, std::move(config), stream}) {
  if (n_features < 1) throw InvalidArgument("Invalid n_features: must be >= 1");
  if (objective == Objective::Softmax ? n_outputs < 2 : n_outputs != 1)
    throw InvalidArgument("Invalid n_outputs: " + std::to_string(n_outputs));
  if (!coef || !intercept) throw InvalidArgument("Invalid coef / intercept: null buffer");
  check_config<T>(s_->config);
}

template <class T>
LinearTrainer<T>::~LinearTrainer() = default;

template <class T>
int64_t LinearTrainer<T>::fit(const DataView<T>& data, const EpochCallback& callback) {
  State& s = *s_;
  s.check(data, "fit");
  check_config<T>(s.config);
  s.data = &data;
  struct Done {  // the view dies with this call
    State& s;
    ~Done() { s.data = nullptr; s.host_X.clear(); s.host_X.shrink_to_fit(); }
  } done{s};
  return dlopt::detail::fit_loop<T>(s, s.config, s.objective, s.K,
                                    {s.y.data(), s.sw.empty() ? nullptr : s.sw.data(), data.n_samples}, s.history,
                                    callback);
}

template <class T>
void LinearTrainer<T>::partial_fit(const DataView<T>& data) {
  dlopt::detail::one_epoch(s_->config, s_->history.schedule_length, [&] { fit(data); });
}

template <class T>
void LinearTrainer<T>::reset_optimizer() {
  s_->reset_optimizer();
}

template <class T>
double LinearTrainer<T>::loss(const DataView<T>& data) {
  State& s = *s_;
  s.check(data, "loss");
  constexpr int64_t kRows = int64_t(1) << 16;  // bounded scratch: the loss is summed in slices
  const int64_t rows = std::min(kRows, data.n_samples);
  s.scratch(rows);
  fill(ptr<double>(s.epoch_sums), 2, 0.0, s.stream);
  for (int64_t start = 0; start < data.n_samples; start += rows)
    launch_batch(s.batch(data, nullptr, start, std::min(rows, data.n_samples - start), false), s.stream);
  double sums_host[2];
  s.read(sums_host, s.epoch_sums->data(), sizeof sums_host);
  return sums_host[0] / sums_host[1] + s.penalty();
}

template <class T> const std::vector<double>& LinearTrainer<T>::loss_curve() const { return s_->history.loss_curve; }
template <class T> const std::vector<double>& LinearTrainer<T>::lr_curve() const { return s_->history.lr_curve; }
template <class T> const std::vector<double>& LinearTrainer<T>::validation_scores() const {
  return s_->history.validation_scores;
}
template <class T> int64_t LinearTrainer<T>::steps() const { return s_->steps; }
template <class T> TrainConfig& LinearTrainer<T>::config() { return s_->config; }
template <class T> Objective LinearTrainer<T>::objective() const { return s_->objective; }
template <class T> int64_t LinearTrainer<T>::n_features() const { return s_->d; }
template <class T> int64_t LinearTrainer<T>::n_outputs() const { return s_->K; }

template class LinearTrainer<float>;
template class LinearTrainer<double>;

}  // namespace dlopt::cuda
