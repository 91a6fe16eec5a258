// C++ tests of the linear-model CUDA kernels without a GPU: one batch's four launches
// (dlopt/cuda/linear_kernels.hpp) are run on the host for every (block, thread), with the warp
// butterfly and the block tree emulated in the kernels' order, and the loss and gradient must equal
// the CPU LinearModel's (its loss, and the gradient of one plain SGD step with lr = 1), for the three
// objectives, float and double, with and without sample weights, shuffled rows and a penalty.
// Also: without a device, LinearTrainer refuses before changing anything; what the GPU cannot run is
// refused in cuda/support.hpp's words, and the rest (Schedule-Free, every state_dtype) is taken; the
// device optimizer's train / eval switch keeps its mode and refuses a step after eval(). With a
// device: LinearTrainer with Schedule-Free and with bfloat16 / int8 state equals the CPU model.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dlopt/cuda/linear.hpp"
#include "dlopt/dlopt.hpp"
#include "harness.hpp"

namespace {

using namespace dlopt_test;

using namespace dlopt::cuda::detail;

/// cuda::launch_batch on the host.
template <class T>
void emulate_batch(const LinearBatch<T>& a) {
  for (int64_t j = 0; j < a.count; ++j) {  // forward: a warp per row
    const T* x = a.X + a.row(j) * a.d;
    for (int64_t k = 0; k < a.K; ++k) {
      T v[kWarp];
      for (int lane = 0; lane < kWarp; ++lane) v[lane] = dot_lane(x, a.W + k * a.d, a.d, lane);
      warp_tree(v);
      a.Z[j * a.K + k] = v[0];
    }
    row_objective(a, j);
  }
  for (int64_t p = 0; p < a.parts; ++p)
    for (int64_t k0 = 0; k0 < a.K; k0 += kClassTile)
      for (int64_t c = 0; c < a.d + 3; ++c) partial_sum(a, p, c, k0);
  for (int64_t q = 0; q < a.np() + 2; ++q) {
    double v[kReduceThreads];
    for (int t = 0; t < kReduceThreads; ++t) v[t] = reduce_lane(a, q, t);
    a.sums[q] = block_tree(v);
  }
  for (int64_t q = 0; q < (a.grad ? a.np() : 1); ++q) apply_grad(a, q);
}

bool close(double a, double b, double rtol) { return std::abs(a - b) <= rtol * (std::abs(b) + 1e-3); }

template <class T>
void batch_equals_cpu(dlopt::Objective obj, int64_t K, bool weighted, bool penalty) {
  const int64_t n = 700, d = 37, offset = 50, count = 600;  // 18 row ranges; 2 class tiles at K = 5
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  std::vector<T> X(static_cast<std::size_t>(n * d)), y(static_cast<std::size_t>(n)), sw(static_cast<std::size_t>(n)), W(static_cast<std::size_t>(K * d)), b(static_cast<std::size_t>(K));
  for (T& v : X) v = T(normal(rng));
  for (T& v : W) v = T(0.3 * normal(rng));
  for (T& v : b) v = T(0.1 * normal(rng));
  for (int64_t i = 0; i < n; ++i) {
    y[i] = obj == dlopt::Objective::SquaredError ? T(normal(rng)) : T(rng() % uint64_t(K == 1 ? 2 : K));
    sw[i] = T(0.25 * double(rng() % 8));
  }
  std::vector<uint32_t> idx(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) idx[i] = uint32_t(i);
  std::shuffle(idx.begin(), idx.end(), rng);

  dlopt::TrainConfig cfg;
  cfg.optimizer = "sgd";
  cfg.lr = 1;
  cfg.epochs = 1;
  if (penalty) cfg.penalty = dlopt::Penalty::ElasticNet, cfg.alpha = 0.05, cfg.l1_ratio = 0.3;

  // The batch's rows gathered on the host: the CPU model's data.
  std::vector<T> Xb(static_cast<std::size_t>(count * d)), yb(static_cast<std::size_t>(count)), swb(static_cast<std::size_t>(count));
  for (int64_t j = 0; j < count; ++j) {
    const uint32_t r = idx[offset + j];
    std::copy(X.begin() + r * d, X.begin() + (r + 1) * d, Xb.begin() + j * d);
    yb[j] = y[r];
    swb[j] = sw[r];
  }
  const dlopt::DataView<T> data{Xb.data(), count, d, yb.data(), weighted ? swb.data() : nullptr};
  std::vector<T> W1 = W, b1 = b;
  dlopt::LinearModel<T> model(obj, d, K, W1.data(), b1.data(), cfg);
  const double cpu_loss = model.loss(data);
  model.fit(data);  // one full-batch SGD step, lr = 1: W − W1 is the CPU gradient

  LinearBatch<T> a;
  std::vector<T> Z(static_cast<std::size_t>(count * K)), row_loss(static_cast<std::size_t>(count)), grad(static_cast<std::size_t>(K * d + K));
  const int64_t parts = batch_parts(count);
  std::vector<double> partials(static_cast<std::size_t>(parts * (K * d + K + 2))), sums(static_cast<std::size_t>(K * d + K + 2)), epoch(2, 0.0);
  a.X = X.data(), a.y = y.data(), a.sw = weighted ? sw.data() : nullptr, a.idx = idx.data();
  a.offset = offset, a.count = count, a.d = d, a.K = K, a.objective = obj, a.W = W.data(), a.b = b.data();
  a.Z = Z.data(), a.row_loss = row_loss.data(), a.partials = partials.data(), a.parts = parts;
  a.sums = sums.data(), a.grad = grad.data(), a.epoch = epoch.data();
  if (penalty) {
    a.l2 = T(cfg.alpha * (1 - cfg.l1_ratio));
    a.l1 = T(cfg.alpha * cfg.l1_ratio);
  }
  emulate_batch(a);

  const double rtol = std::is_same_v<T, float> ? 2e-4 : 1e-9;
  const std::string what = std::string(std::is_same_v<T, float> ? "float" : "double") + " objective " +
                           std::to_string(int(obj)) + " K=" + std::to_string(K) + (weighted ? " weighted" : "") +
                           (penalty ? " elasticnet" : "");
  double l1 = 0, l2 = 0;
  for (T c : W) l1 += std::abs(double(c)), l2 += double(c) * c;
  const double pen = penalty ? cfg.alpha * (cfg.l1_ratio * l1 + (1 - cfg.l1_ratio) * 0.5 * l2) : 0.0;
  check(close(epoch[0] / epoch[1] + pen, cpu_loss, rtol), what + ": loss");
  bool grads_ok = true;
  for (int64_t q = 0; q < K * d; ++q) grads_ok &= close(double(grad[q]), double(W[q]) - double(W1[q]), rtol * 10);
  for (int64_t k = 0; k < K; ++k) grads_ok &= close(double(grad[K * d + k]), double(b[k]) - double(b1[k]), rtol * 10);
  check(grads_ok, what + ": gradient");

  // Loss only (grad == nullptr): the same sums, nothing written to grad.
  std::vector<double> epoch2(2, 0.0);
  std::fill(grad.begin(), grad.end(), T(7));
  a.grad = nullptr;
  a.epoch = epoch2.data();
  emulate_batch(a);
  check(epoch2 == epoch && grad[0] == T(7), what + ": loss-only batch");
}

template <class T>
void all_batches() {
  for (bool weighted : {false, true})
    for (bool penalty : {false, true}) {
      batch_equals_cpu<T>(dlopt::Objective::SquaredError, 1, weighted, penalty);
      batch_equals_cpu<T>(dlopt::Objective::Logistic, 1, weighted, penalty);
      batch_equals_cpu<T>(dlopt::Objective::Softmax, 5, weighted, penalty);
    }
}

void without_a_device() {
  if (dlopt::cuda::is_available()) return;
  std::vector<float> X(6, 1.0f), y(3, 1.0f), W(2, 0.5f), b(1, 0.25f);
  dlopt::cuda::LinearTrainer<float> trainer(dlopt::Objective::SquaredError, 2, 1, W.data(), b.data());
  bool refused = false;
  try {
    trainer.fit({X.data(), 3, 2, y.data()});
  } catch (const std::runtime_error&) {  // NotCompiled without CUDA; no device otherwise
    refused = true;
  }
  check(refused && W[0] == 0.5f && b[0] == 0.25f && trainer.loss_curve().empty(),
        "without a device, LinearTrainer::fit throws and changes nothing");
  bool bad_name = false;
  try {
    dlopt::make_device_optimizer<float>("bogus", {{W.data(), 2}});
  } catch (const dlopt::InvalidArgument&) {
    bad_name = true;
  }
  check(bad_name, "make_device_optimizer checks the name first");
}

/// What the GPU cannot run is refused by the trainer's constructor (no device needed) and by
/// make_device_optimizer, in the words of cuda/support.hpp; the rest passes.
void gpu_refusals() {
  std::vector<float> W(2, 0.5f), b(1, 0.25f);
  auto refused = [&](dlopt::TrainConfig cfg, const std::string& message) {
    return throws<dlopt::InvalidArgument>(
        [&] { dlopt::cuda::LinearTrainer<float>(dlopt::Objective::SquaredError, 2, 1, W.data(), b.data(), cfg); },
        message);
  };
  dlopt::TrainConfig cfg;
  cfg.optimizer = "lbfgs";
  check(refused(cfg, "LBFGS runs on the CPU only for now"), "lbfgs is refused on the GPU");
  cfg.optimizer = "Adafactor";
  check(!refused(cfg, ""), "Adafactor (a matrix rule with a CUDA step) runs on the GPU");
  cfg.optimizer = "Lamb";
  check(!refused(cfg, ""), "a rule with per-tensor norms (LAMB) has a GPU step");
  cfg.optimizer = "Muon";
  check(!refused(cfg, ""), "Muon (a matrix rule with a CUDA step) is not refused on the GPU");
  cfg.optimizer = "ScheduleFreeAdamW";
  check(!refused(cfg, ""), "Schedule-Free (its train / eval switch) runs on the GPU");
  cfg.optimizer = "adam";
  for (dlopt::StateDType dtype : {dlopt::StateDType::BFloat16, dlopt::StateDType::Int8, dlopt::StateDType::Float32}) {
    cfg.optimizer_storage.state_dtype = dtype;
    check(!refused(cfg, ""), std::string("state_dtype ") + dlopt::state_dtype_name(dtype) + " runs on the GPU");
    dlopt::cuda::check_config<double>(cfg);  // float32 state for float64 parameters too, as on the CPU
  }
  cfg.optimizer_storage.master_weights = true;
  check(!refused(cfg, ""), "master_weights for float32 parameters passes the check as on the CPU");
}

/// make_device_optimizer's train / eval switch as Optimizer's, without a device: before a tensor's
/// first step y = x, so train() / eval() move nothing; the mode is kept, and a step after eval()
/// throws before anything (before it would need the device). Storage options are checked as
/// make_optimizer checks them.
void device_optimizer_modes() {
  std::vector<float> W(2, 0.5f), g(2, 1.0f);
  for (const char* name : {"ScheduleFreeSGD", "schedulefreeadamw"}) {
    auto opt = dlopt::make_device_optimizer<float>(name, {{W.data(), 2}});
    check(opt->train_mode(), std::string(name) + ": a new device optimizer is in train mode");
    opt->eval();
    check(!opt->train_mode(), std::string(name) + ": eval() on the device optimizer");
    check(throws<dlopt::InvalidArgument>([&] { opt->step({g.data()}); }, "not in train mode; call train() before step()"),
          std::string(name) + ": a device step after eval() is refused as on the CPU");
    opt->train();
    check(opt->train_mode() && W[0] == 0.5f, std::string(name) + ": train() again, nothing moved");
  }
  auto adam = dlopt::make_device_optimizer<float>("adam", {{W.data(), 2}});
  adam->eval();  // no modes: a no-op, as Optimizer's
  check(adam->train_mode(), "eval() is a no-op for a rule without modes");
  dlopt::StorageOptions o;
  o.state_dtype = dlopt::StateDType::Int8;
  dlopt::make_device_optimizer<float>("adam", {{W.data(), 2}}, {}, nullptr, o);  // accepted
  o.master_weights = true;
  check(throws<dlopt::InvalidArgument>([&] { dlopt::make_device_optimizer<float>("adam", {{W.data(), 2}}, {}, nullptr, o); },
                                       "master_weights: only for 16-bit parameters"),
        "make_device_optimizer checks the storage options as make_optimizer does");
}

/// With a device: LinearTrainer with Schedule-Free (its train / eval switch inside fit) and with
/// bfloat16 / int8 state equals the CPU LinearModel (as tests/test_cuda_linear.py's tolerance).
template <class T>
void trainer_equals_cpu(const char* optimizer, dlopt::StateDType dtype) {
  if (!dlopt::cuda::is_available()) return;
  const int64_t n = 300, d = 5;
  std::mt19937_64 rng(9);
  std::normal_distribution<double> normal;
  std::vector<T> X(std::size_t(n * d)), y(static_cast<std::size_t>(n)), W(static_cast<std::size_t>(d), T(0)), b(1, T(0));
  for (T& v : X) v = T(normal(rng));
  for (int64_t i = 0; i < n; ++i) y[std::size_t(i)] = T(X[std::size_t(i * d)] - 0.5 * X[std::size_t(i * d + 1)] + 0.1 * normal(rng));
  dlopt::TrainConfig cfg;
  cfg.optimizer = optimizer;
  cfg.lr = 0.05;
  cfg.epochs = 8;
  cfg.batch_size = 32;
  cfg.optimizer_storage.state_dtype = dtype;
  std::vector<T> Wc = W, bc = b;
  dlopt::LinearModel<T> cpu(dlopt::Objective::SquaredError, d, 1, Wc.data(), bc.data(), cfg);
  cpu.fit({X.data(), n, d, y.data()});

  auto upload = [](const std::vector<T>& v) {
    auto buf = std::make_unique<dlopt::cuda::Buffer>(v.size() * sizeof(T), 0);
    dlopt::cuda::copy(buf->data(), v.data(), v.size() * sizeof(T));
    return buf;
  };
  auto dX = upload(X), dy = upload(y), dW = upload(W), db = upload(b);
  dlopt::cuda::LinearTrainer<T> gpu(dlopt::Objective::SquaredError, d, 1, static_cast<T*>(dW->data()),
                                    static_cast<T*>(db->data()), cfg);
  gpu.fit({static_cast<const T*>(dX->data()), n, d, static_cast<const T*>(dy->data())});
  std::vector<T> Wg(W.size()), bg(1);
  dlopt::cuda::copy(Wg.data(), dW->data(), Wg.size() * sizeof(T));
  dlopt::cuda::copy(bg.data(), db->data(), sizeof(T));
  // The batch gradients' sums are ordered differently on the two devices; a last-bit difference can
  // round a bfloat16 / int8 state value the other way, hence the wider bound there.
  const double rtol = dtype == dlopt::StateDType::Default ? (std::is_same_v<T, float> ? 1e-4 : 1e-6) : 1e-3;
  bool ok = close(double(bg[0]), double(bc[0]), rtol);
  for (std::size_t j = 0; j < W.size(); ++j) ok &= close(double(Wg[j]), double(Wc[j]), rtol);
  for (std::size_t e = 0; e < cpu.loss_curve().size(); ++e) ok &= close(gpu.loss_curve()[e], cpu.loss_curve()[e], rtol);
  check(ok && gpu.steps() == cpu.steps() && Wg != W,
        std::string("GPU LinearTrainer equals the CPU model: ") + optimizer + ", state_dtype " +
            dlopt::state_dtype_name(dtype) + (std::is_same_v<T, float> ? ", float" : ", double"));
}

}  // namespace

int main() {
  all_batches<float>();
  all_batches<double>();
  check(batch_parts(1) == 1 && batch_parts(256) == 8 && batch_parts(int64_t(1) << 30) == kMaxParts,
        "row ranges depend on the batch size only");
  without_a_device();
  gpu_refusals();
  device_optimizer_modes();
  for (const char* optimizer : {"ScheduleFreeSGD", "ScheduleFreeAdamW", "Adam"})
    for (dlopt::StateDType dtype : {dlopt::StateDType::Default, dlopt::StateDType::BFloat16, dlopt::StateDType::Int8}) {
      trainer_equals_cpu<float>(optimizer, dtype);
      trainer_equals_cpu<double>(optimizer, dtype);
    }
  return summary();
}
