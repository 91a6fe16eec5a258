// LinearModel (dlopt/models/linear.hpp) on the CPU: the model's buffers and optimizer, one epoch of
// mini-batches (partitions summed in a fixed order, one OpenMP region per epoch), the full-batch
// loss and gradient, and the decision values. The epochs are driven by the fit loop shared with the
// GPU (fit_loop.cpp); the per-row maths is in row_kernels.cpp, the closed form in least_squares.cpp.
// The update itself is always an AnyOptimizer step: no optimizer maths lives here.

#include "dlopt/models/linear.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <utility>
#if defined(_OPENMP)
#include <omp.h>
#endif

#include "batch_gate.hpp"
#include "epoch_threads.hpp"
#include "common.hpp"
#include "dlopt/core/aligned.hpp"
#include "dlopt/models/objective.hpp"
#include "fit_loop.hpp"
#include "row_kernels.hpp"

namespace dlopt {
namespace {

using detail::kSub;
using detail::parallel_ok;
using detail::partitions;
using detail::penalty_value;
using detail::RowMat;
using detail::RowSet;
using detail::rows_pass;
using detail::softmax_rows;

#if defined(_OPENMP)
int64_t thread_index() { return omp_get_thread_num(); }
int64_t team_size() { return omp_get_num_threads(); }
#else
int64_t thread_index() { return 0; }
int64_t team_size() { return 1; }
#endif

}  // namespace

template <class T>
struct LinearModel<T>::Work {
  AlignedVector<T> grad;                // n_outputs·n_features coefficients, then n_outputs intercepts
  AlignedVector<T> partials;            // one gradient per partition
  std::vector<double> part_loss, part_weight;
  std::vector<uint32_t> tiles, order;   // block shuffling: the block order, the epoch's row order
  std::vector<const T*> grads = {nullptr, nullptr};  // the optimizer's argument, reused every step
  detail::EpochThreads threads;         // 1 or the whole team, by measured epoch times
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
  if (optimizer_ && o == storage_ && detail::lower(optimizer_->name()) == detail::lower(config_.optimizer)) {
    for (const auto& [key, value] : h) optimizer_->set(key, value);
    return;
  }
  const int64_t nc = n_outputs_ * n_features_;
  // coef is a K × d matrix (rows K), as torch's nn.Linear weight; the intercept a vector: LARS's
  // exclude_1d then leaves out the intercept only, and the matrix rules see coef's shape
  optimizer_ = make_optimizer<T>(config_.optimizer, {{coef_, nc, n_outputs_}, {intercept_, n_outputs_}}, h, o);
  storage_ = o;
  steps_ = 0;
}


template <class T>
void LinearModel<T>::check_data(const DataView<T>& data, const char* what) const {
  detail::check_shape(data, n_features_, what);
  detail::check_targets(objective_, n_outputs_, data.y, data.sample_weight, data.n_samples);
}

template <class T>
double LinearModel<T>::epoch(const DataView<T>& data, std::vector<uint32_t>& rows) {
  const int64_t d = n_features_, K = n_outputs_, np = K * d + K;
  const detail::BatchPlan plan(config_, rows.empty() ? data.n_samples : int64_t(rows.size()));
  const int64_t m = plan.m, nb = plan.count, B = plan.size;
  auto first = [&](int64_t j) { return plan.first(j); };
  Work& w = *work_;
  const uint32_t* idx = detail::epoch_order(config_, plan, rows, history_.rng_state, w.tiles, w.order);
  T* grad = w.grad.data();
  const bool intercept = config_.fit_intercept;
  double epoch_loss = 0, epoch_weight = 0;
  // A batch is summed over fixed partitions (each on its own, then added in order), so the result
  // does not depend on the number of threads.
  const int64_t parts = partitions(B);
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
    if (!std::isfinite(loss)) throw detail::NonFinite{};
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

  const bool parallel = parts > 1 && parallel_ok(B * d * K);
  const int team = parallel ? w.threads.pick(get_num_threads()) : 1;
  const double started = parallel ? detail::EpochThreads::now() : 0;
  if (team > 1 && nb > 1) {
    // One parallel region for the whole epoch (not one per batch). Batch g runs while the gate's
    // generation is g. Each thread takes its own share of the batch's partitions in order (its
    // prefetch stream), then the partitions nobody has taken, from the end of the others' shares;
    // the thread that finishes the batch's last partition steps the optimizer and opens the gate.
    // No thread has to arrive anywhere: a thread slowed down (a core shared with other work) holds a
    // batch up by at most the partition it is in, and a thread with nothing left to take waits at the
    // gate (a short spin, then asleep, freeing its core for the thread the batch waits for).
    static_assert(detail::kMaxParts <= 64, "claims per partition");
    std::exception_ptr error;
    std::atomic<bool> stop{false};
    std::atomic<uint32_t> claim[detail::kMaxParts] = {};  // g + 1: partition taken in batch g
    std::atomic<int64_t> done{0};                          // partitions of the current batch summed
    detail::BatchGate gate;
#pragma omp parallel num_threads(team)
    for (;;) {
      const uint32_t g = gate.generation();
      if (int64_t(g) >= nb || stop.load(std::memory_order_relaxed)) break;
      const int64_t start = first(g), count = first(g + 1) - start, n_parts = partitions(count);
      const int64_t t = thread_index(), threads = team_size();
      const int64_t p0 = n_parts * t / threads, p1 = n_parts * (t + 1) / threads;
      auto take = [&](int64_t p) {  // false once anyone took it in this batch (or a later one)
        uint32_t seen = claim[p].load(std::memory_order_relaxed);
        while (seen < g + 1)
          if (claim[p].compare_exchange_weak(seen, g + 1, std::memory_order_relaxed)) return true;
        return false;
      };
      auto sum = [&](int64_t p, int64_t s0, int64_t s1) {
        part(start, count, p, n_parts, s0, s1);
        // The last partition's thread sees every partial sum (acq_rel), steps, and opens the gate,
        // which publishes the new parameters and `stop` to the others.
        if (done.fetch_add(1, std::memory_order_acq_rel) != n_parts - 1) return;
        try {
          update(n_parts);
        } catch (...) {
          error = std::current_exception();
          stop.store(true, std::memory_order_relaxed);
        }
        done.store(0, std::memory_order_relaxed);
        gate.open();
      };
      for (int64_t p = p0; p < p1 && take(p); ++p) sum(p, p0, p1);
      for (int64_t p = n_parts - 1; p >= 0; --p)
        if ((p < p0 || p >= p1) && take(p)) sum(p, p, p + 1);
      gate.wait(g);  // at once when this thread opened it
    }
    if (error) std::rethrow_exception(error);
  } else {  // one batch (its optimizer step may use every thread), too little work to share, or one
           // thread measured faster (EpochThreads)
    for (int64_t j = 0; j < nb; ++j) {
      const int64_t start = first(j), count = first(j + 1) - start, n_parts = partitions(count);
      if (team > 1) {
#pragma omp parallel for schedule(static) num_threads(team)
        for (int64_t p = 0; p < n_parts; ++p) part(start, count, p, n_parts, p, p + 1);
      } else {  // no OpenMP call at all: tiny problems (the seed example) pay per epoch for one
        for (int64_t p = 0; p < n_parts; ++p) part(start, count, p, n_parts, 0, n_parts);
      }
      update(n_parts);
    }
  }
  if (parallel) w.threads.record(team, detail::EpochThreads::now() - started);
  double l1 = 0, l2 = 0;
  if (config_.penalty != Penalty::None)
    for (int64_t k = 0; k < K * d; ++k) l1 += std::abs(double(coef_[k])), l2 += double(coef_[k]) * coef_[k];
  return epoch_loss / epoch_weight + penalty_value(config_.penalty, config_.alpha, config_.l1_ratio, l1, l2);
}

/// The CPU model as the fit loop's device: its epochs, its score and its buffers, on the fit's data.
template <class T>
class LinearModel<T>::Cpu final : public detail::FitBackend<T> {
 public:
  Cpu(LinearModel& model, const DataView<T>& data) : m_(model), data_(data) {}
  void ensure_optimizer() override { m_.ensure_optimizer(); }
  void reset_optimizer() override { m_.reset_optimizer(); }
  void set_lr(double lr) override { m_.optimizer_->set("lr", lr); }
  void set_train_mode(bool train) override {
    if (m_.optimizer_) train ? m_.optimizer_->train() : m_.optimizer_->eval();
  }
  double epoch(std::vector<uint32_t>& rows) override { return m_.epoch(data_, rows); }
  double score(const std::vector<uint32_t>& rows) override {
    return detail::validation_score(m_.objective_, m_.n_features_, m_.n_outputs_, m_.coef_, m_.intercept_, data_,
                                    rows);
  }
  void save(std::vector<T>& params) override {
    const int64_t nc = m_.n_outputs_ * m_.n_features_;
    params.assign(m_.coef_, m_.coef_ + nc);
    params.insert(params.end(), m_.intercept_, m_.intercept_ + m_.n_outputs_);
  }
  void restore(const std::vector<T>& params) override {
    const int64_t nc = m_.n_outputs_ * m_.n_features_;
    std::copy(params.begin(), params.begin() + nc, m_.coef_);
    std::copy(params.begin() + nc, params.end(), m_.intercept_);
  }
  std::string bad_input() override { return detail::nonfinite_cell(data_.X, data_.n_samples, data_.n_features); }

 private:
  LinearModel& m_;
  const DataView<T>& data_;
};

template <class T>
int64_t LinearModel<T>::fit(const DataView<T>& data, const EpochCallback& callback) {
  if (detail::lower(config_.optimizer) == "lbfgs") return fit_lbfgs(data, callback);  // not a rule: its own loop
  check_data(data, "fit");
  config_.validate();
  Cpu device(*this, data);
  return detail::fit_loop<T>(device, config_, objective_, n_outputs_, {data.y, data.sample_weight, data.n_samples},
                             history_, callback);
}

template <class T>
void LinearModel<T>::partial_fit(const DataView<T>& data) {
  if (detail::lower(config_.optimizer) == "lbfgs")
    throw InvalidArgument("partial_fit: optimizer 'lbfgs' is a full-batch method; use fit");
  detail::one_epoch(config_, history_.schedule_length, [&] { fit(data); });
}

template <class T>
double LinearModel<T>::loss(const DataView<T>& data) const {
  check_data(data, "loss");
  const int64_t d = n_features_, K = n_outputs_, n = data.n_samples;
  const int64_t parts = partitions(n);
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
  const int64_t parts = partitions(n);
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
    softmax_rows(d, K, coef_, intercept_, data, lo, hi, g, g + K * d, w.part_loss[p], w.part_weight[p]);
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

template class LinearModel<float>;
template class LinearModel<double>;

}  // namespace dlopt
