// C++ tests of Muon's CUDA step (cuda/muon.cu, dlopt/cuda/muon_kernels.hpp). Everywhere, without a
// GPU: every kernel body run on the host for every (block, thread) of its launch —
//   - the elementwise ones (momentum / look-ahead / transpose, the scaling by the norm, the decayed
//     update) equal the CPU step's parts (MuonRule::update_matrix's Eigen code) bit for bit;
//   - the norm's two passes equal their documented order bit for bit, and the exact sum closely;
//   - the products equal a plain triple loop in their documented order bit for bit (tails of
//     every tile, a transposed right factor, beta·add, the bfloat16 rounding, float accumulation
//     of double matrices);
//   - the whole emulated step (muon_tensor, the launches muon.cu makes) equals the CPU step at
//     tolerance over several steps: wide, tall and square matrices, nesterov on / off, both
//     adjust_lr modes, float, double and the bfloat16 iteration (its momentum buffer bit for bit).
// With a CUDA device: cuda::step equals that emulation bit for bit and the CPU step at the same
// tolerances, and make_device_optimizer("Muon") equals make_optimizer at tolerance.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "dlopt/cuda/muon_kernels.hpp"
#include "dlopt/dlopt.hpp"
#include "harness.hpp"

namespace {

using namespace dlopt_test;
namespace mk = dlopt::cuda::detail::muon;
using dlopt::MuonRule;

/// muon_tensor's launches run on the host: every block, and in it every thread of each phase in
/// turn before the next phase (the kernels' barriers); shared memory starts stale.
struct HostLaunch {
  template <class F>
  void elementwise(int64_t n, const F& f) {
    const int64_t grid = mk::elementwise_grid(n);
    for (int64_t block = 0; block < grid; ++block)
      for (int thread = 0; thread < mk::kThreads; ++thread) mk::elementwise(f, n, block, grid, thread);
  }
  template <class T>
  void norm(const T* x, int64_t n, double* partial) {
    mk::NormShared sh;
    std::memset(static_cast<void*>(&sh), 0xa5, sizeof sh);
    for (int64_t chunk = 0; chunk < (n + mk::kNormChunk - 1) / mk::kNormChunk; ++chunk) {
      for (int thread = 0; thread < mk::kThreads; ++thread) mk::norm_lanes(x, n, chunk, sh, thread);
      for (int thread = 0; thread < mk::kThreads; ++thread) mk::norm_chunk(sh, chunk, partial, thread);
    }
  }
  template <class F>
  void single(const F& f) {
    f(0);
  }
  template <class T, class Acc>
  void gemm(const mk::Gemm<T, Acc>& g) {
    mk::GemmShared<Acc> sh;
    std::memset(static_cast<void*>(&sh), 0xa5, sizeof sh);
    const auto all_threads = [](const auto& phase) {
      for (int thread = 0; thread < mk::kThreads; ++thread) phase(thread);
    };
    for (int64_t bi = 0; bi < (g.m + mk::kBlockTile - 1) / mk::kBlockTile; ++bi)
      for (int64_t bj = 0; bj < (g.n + mk::kBlockTile - 1) / mk::kBlockTile; ++bj) {
        std::vector<mk::GemmAccumulators<Acc>> acc(mk::kThreads, mk::GemmAccumulators<Acc>{});
        mk::gemm_tile(g, bi, bj, sh, [&acc](int t) -> mk::GemmAccumulators<Acc>& { return acc[std::size_t(t)]; },
                      all_threads);
      }
  }
};

template <class T>
std::vector<T> normal_vector(std::size_t n, std::mt19937_64& rng, double scale = 1) {
  std::normal_distribution<double> normal(0, scale);
  std::vector<T> v(n);
  for (T& x : v) x = T(normal(rng));
  return v;
}

template <class T>
T bf16(T x) {
  return MuonRule::ns_round(true, x);
}

template <class T>
std::string type_name() {
  return sizeof(T) == 4 ? "float" : "double";
}

// ---- the products --------------------------------------------------------------------------------

/// The documented order: out[i][j] = round(beta·add + alpha·((0 + l₀r₀) + l₁r₁ + …)) in Acc.
template <class T, class Acc>
std::vector<T> gemm_reference(const mk::Gemm<T, Acc>& g) {
  std::vector<T> out(std::size_t(g.m * g.n));
  for (int64_t i = 0; i < g.m; ++i)
    for (int64_t j = 0; j < g.n; ++j) {
      Acc acc = 0;
      for (int64_t q = 0; q < g.k; ++q) {
        const Acc r = Acc(g.r_transposed ? g.R[j * g.k + q] : g.R[q * g.n + j]);
        acc = acc + Acc(g.L[i * g.k + q]) * r;
      }
      Acc v = g.alpha * acc;
      if (g.add) v = g.beta * Acc(g.add[i * g.n + j]) + v;
      out[std::size_t(i * g.n + j)] = T(MuonRule::ns_round(g.bf16, v));
    }
  return out;
}

template <class T, class Acc>
void products_equal_their_order() {
  std::mt19937_64 rng(5);
  const int64_t shapes[][3] = {{1, 1, 1}, {17, 33, 5}, {40, 3, 40}, {64, 16, 64}, {33, 70, 18}, {130, 17, 70}};
  for (const auto& s : shapes)
    for (int transposed = 0; transposed < 2; ++transposed)
      for (int with_add = 0; with_add < 2; ++with_add)
        for (int round = 0; round < 2; ++round) {
          if (sizeof(Acc) < sizeof(T) && !round) continue;  // float accumulation is the bfloat16 mode's
          const int64_t m = s[0], k = s[1], n = s[2];
          std::vector<T> L = normal_vector<T>(std::size_t(m * k), rng), R = normal_vector<T>(std::size_t(k * n), rng),
                         add = normal_vector<T>(std::size_t(m * n), rng), out(std::size_t(m * n), T(-7));
          if (round)
            for (auto* v : {&L, &R, &add})
              for (T& x : *v) x = bf16(x);
          const mk::Gemm<T, Acc> g{L.data(), R.data(), bool(transposed), m, k, n, Acc(0.75),
                                   with_add ? add.data() : nullptr, Acc(-1.5), bool(round), out.data()};
          HostLaunch launch;
          launch.gemm(g);
          check(out == gemm_reference(g), "emulated product equals its order: " + type_name<T>() + "/" +
                                              type_name<Acc>() + " " + std::to_string(m) + "x" + std::to_string(k) +
                                              "x" + std::to_string(n) + (transposed ? " R^T" : "") +
                                              (with_add ? " +add" : "") + (round ? " bf16" : ""));
        }
}

// ---- the norm ------------------------------------------------------------------------------------

template <class T>
void norm_equals_its_order() {
  std::mt19937_64 rng(6);
  for (int64_t n : {int64_t(1), int64_t(255), int64_t(4096), int64_t(4097), int64_t(3 * 4096 + 999)}) {
    const std::vector<T> x = normal_vector<T>(std::size_t(n), rng);
    const int64_t chunks = (n + mk::kNormChunk - 1) / mk::kNormChunk;
    std::vector<double> partial(std::size_t(chunks), -1.0);
    HostLaunch launch;
    launch.norm(x.data(), n, partial.data());
    double total = 0, exact_sum = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      double lanes = 0;
      for (int t = 0; t < mk::kThreads; ++t) {
        double lane = 0;
        for (int64_t i = c * mk::kNormChunk + t; i < std::min(n, (c + 1) * mk::kNormChunk); i += mk::kThreads)
          lane += double(x[std::size_t(i)]) * double(x[std::size_t(i)]);
        lanes += lane;
      }
      check(partial[std::size_t(c)] == lanes, "norm chunk " + std::to_string(c) + " in its order, n " + std::to_string(n));
      total += lanes;
    }
    for (T v : x) exact_sum += double(v) * double(v);  // another order: close, not equal
    MuonRule::Config config;
    const auto c = MuonRule::coeffs<T>(config, {});
    T divisor = T(-1);
    launch.single(mk::Divisor<T>{c, partial.data(), chunks, &divisor});
    check(divisor == MuonRule::ns_divisor(c, T(std::sqrt(total))) && near(double(divisor), std::sqrt(exact_sum), 1e-6),
          "the divisor from the chunks in order, n " + std::to_string(n));
  }
}

// ---- the elementwise bodies equal the CPU's parts --------------------------------------------------

template <class T>
using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

template <class T>
void elementwise_equals_cpu(int64_t rows, int64_t cols, bool nesterov, bool round) {
  const std::string what = type_name<T>() + " " + std::to_string(rows) + "x" + std::to_string(cols) +
                           (nesterov ? " nesterov" : "") + (round ? " bf16" : "");
  std::mt19937_64 rng(uint64_t(rows * 1000 + cols));
  MuonRule::Config config;
  config.nesterov = nesterov;
  config.ns_bfloat16 = round;
  config.lr = 0.02;
  const auto c = MuonRule::coeffs<T>(config, {});
  const int64_t size = rows * cols, m = std::min(rows, cols), n = size / m;
  std::vector<T> p = normal_vector<T>(std::size_t(size), rng), g = normal_vector<T>(std::size_t(size), rng),
                 b = normal_vector<T>(std::size_t(size), rng), x(std::size_t(size), T(-3));

  // The CPU's first lines (update_matrix), on copies.
  Eigen::Map<const Mat<T>> G(g.data(), rows, cols);
  Mat<T> B = Eigen::Map<const Mat<T>>(b.data(), rows, cols);
  B = B.binaryExpr(G, [&](T buf, T grad) { return MuonRule::momentum_of(c, buf, grad); });
  const Mat<T> U = nesterov ? Mat<T>(G.binaryExpr(B, [&](T grad, T buf) { return MuonRule::look_ahead(c, grad, buf); }))
                            : B;
  Mat<T> X = rows > cols ? Mat<T>(U.transpose()) : U;
  if (round) X = X.unaryExpr([](T v) { return bf16(v); });

  HostLaunch launch;
  std::vector<T> buf = b;
  launch.elementwise(size, mk::Prepare<T>{c, rows, cols, g.data(), buf.data(), x.data()});
  check(std::memcmp(buf.data(), B.data(), std::size_t(size) * sizeof(T)) == 0, "Prepare's momentum equals the CPU's: " + what);
  check(std::memcmp(x.data(), X.data(), std::size_t(size) * sizeof(T)) == 0, "Prepare's X equals the CPU's: " + what);

  // Division by the CPU's divisor, then the decayed update with the transposed-back X.
  const T divisor = MuonRule::ns_divisor(c, T(X.norm()));
  Mat<T> Xs = X;
  Xs /= divisor;
  if (round) Xs = Xs.unaryExpr([](T v) { return bf16(v); });
  launch.elementwise(size, mk::Normalize<T>{round, &divisor, x.data()});
  check(std::memcmp(x.data(), Xs.data(), std::size_t(size) * sizeof(T)) == 0, "Normalize equals the CPU's X / divisor: " + what);

  Mat<T> P = Eigen::Map<const Mat<T>>(p.data(), rows, cols);
  const T step = MuonRule::adjusted_lr(c, rows, cols);
  if (rows > cols) P = MuonRule::decayed_step(c, step, P, Xs.transpose());  // as update_matrix
  else P = MuonRule::decayed_step(c, step, P, Xs);
  launch.elementwise(size, mk::Apply<T>{c, step, rows, cols, x.data(), p.data()});
  check(std::memcmp(p.data(), P.data(), std::size_t(size) * sizeof(T)) == 0, "Apply equals the CPU's update: " + what);
  (void)m, (void)n;
}

// ---- the whole step ------------------------------------------------------------------------------

/// One device step of every tensor, emulated: cuda::step's checks and segments, then muon_tensor of
/// each on the host.
template <class T>
void emulated_step(const dlopt::TensorStep<MuonRule, T>* tensors, std::size_t count) {
  dlopt::detail::check_step(tensors, count);
  const auto& segments = dlopt::detail::begin_step(tensors, count);
  for (const auto& seg : segments) {
    const int64_t rows = seg.rows, cols = seg.size / rows, m = std::min(rows, cols), n = seg.size / m;
    int64_t sizes[6];
    mk::Workspace<T>::sizes(m, n, sizes);
    std::vector<T> x(static_cast<std::size_t>(sizes[0])), next(x.size()), gram(static_cast<std::size_t>(sizes[2])),
        poly(gram.size()), divisor(1);
    std::vector<double> partial(static_cast<std::size_t>(sizes[4]));
    const mk::Workspace<T> w{x.data(), next.data(), gram.data(), poly.data(), partial.data(), divisor.data()};
    HostLaunch launch;
    T* param = static_cast<T*>(seg.param.data);
    T* buf = static_cast<T*>(seg.slots[0].data);
    const T* grad = static_cast<const T*>(seg.grad.data);
    if (seg.coeffs.bf16) mk::muon_tensor<T, float>(seg.coeffs, rows, cols, param, grad, buf, w, launch);
    else mk::muon_tensor<T, T>(seg.coeffs, rows, cols, param, grad, buf, w, launch);
  }
}

/// The tolerance of a step sequence, relative to how far the CPU moved the parameter: the float
/// iteration 1e-5 (issue 12), double 1e-12, the bfloat16 iteration a few bfloat16 ulps (2⁻⁸ each).
template <class T>
double tolerance(bool round) {
  return round ? 4.0 / 256 : sizeof(T) == 4 ? 1e-5 : 1e-12;
}

struct Case {
  int64_t rows, cols;
  bool nesterov;
  double adjust_lr;
  bool bf16;
};

std::string case_name(const Case& k) {
  return std::to_string(k.rows) + "x" + std::to_string(k.cols) + (k.nesterov ? " nesterov" : "") +
         (k.adjust_lr == 1 ? " match_rms_adamw" : " original") + (k.bf16 ? " bf16" : "");
}

std::vector<Case> cases() {
  std::vector<Case> all;
  const int64_t shapes[][2] = {{24, 70}, {70, 24}, {33, 33}, {1, 9}};
  for (const auto& s : shapes)
    for (int nesterov = 0; nesterov < 2; ++nesterov)
      for (int adjust = 0; adjust < 2; ++adjust)
        for (int round = 0; round < 2; ++round) all.push_back({s[0], s[1], bool(nesterov), double(adjust), bool(round)});
  return all;
}

/// The largest |a − b| over the largest |cpu − start|.
template <class T>
double moved_error(const std::vector<T>& a, const std::vector<T>& cpu, const std::vector<T>& start) {
  double diff = 0, moved = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - double(cpu[i])));
    moved = std::max(moved, std::abs(double(cpu[i]) - double(start[i])));
  }
  return diff / moved;
}

/// `steps` steps of one tensor on the CPU and through `device_step` (the emulation, or cuda::step
/// on device copies: `upload` / `download` move a host vector); returns the parameter's error and
/// checks the momentum buffer bit for bit.
template <class T, class DeviceStep>
double step_sequence(const Case& k, int steps, const DeviceStep& device_step, std::vector<T>* device_param = nullptr) {
  std::mt19937_64 rng(uint64_t(k.rows * 7 + k.cols));
  MuonRule::Config config;
  config.lr = 0.02;
  config.nesterov = k.nesterov;
  config.adjust_lr = k.adjust_lr;
  config.ns_bfloat16 = k.bf16;
  const std::size_t size = std::size_t(k.rows * k.cols);
  const std::vector<T> start = normal_vector<T>(size, rng);
  std::vector<T> p = start, q = start, b(size), c(size);
  dlopt::TensorScalars sp, sq;
  bool buffers_equal = true;
  for (int s = 0; s < steps; ++s) {
    const std::vector<T> g = normal_vector<T>(size, rng);
    dlopt::TensorStep<MuonRule, T> host, device;
    host.param = p.data(), host.grad = g.data(), host.slots = {b.data()};
    device.param = q.data(), device.grad = g.data(), device.slots = {c.data()};
    host.size = device.size = int64_t(size);
    host.rows = device.rows = k.rows;
    host.config = device.config = &config;
    host.scalars = &sp, device.scalars = &sq;
    dlopt::step(&host, 1);
    device_step(device);
    buffers_equal = buffers_equal && b == c;
  }
  check(buffers_equal && sq.step == steps, "the device step's momentum buffer equals the CPU's: " + case_name(k));
  if (device_param) *device_param = q;
  return moved_error(q, p, start);
}

template <class T>
void emulated_step_equals_cpu() {
  for (const Case& k : cases()) {
    const double err = step_sequence<T>(k, 4, [](dlopt::TensorStep<MuonRule, T>& t) { emulated_step(&t, 1); });
    check(err <= tolerance<T>(k.bf16), "emulated device step equals the CPU's at tolerance: " + type_name<T>() + " " +
                                           case_name(k) + " (error " + std::to_string(err) + ")");
  }
}

// ---- with a device ---------------------------------------------------------------------------------

/// cuda::step on device copies of the tensor's buffers (the legacy default stream).
template <class T>
void device_step(dlopt::TensorStep<MuonRule, T>& t) {
  const std::size_t bytes = std::size_t(t.size) * sizeof(T);
  dlopt::cuda::Buffer dp(bytes, 0), dg(bytes, 0), db(bytes, 0);
  T* p = static_cast<T*>(t.param.data);
  T* b = static_cast<T*>(t.slots[0].data);
  dlopt::cuda::copy(dp.data(), p, bytes);
  dlopt::cuda::copy(dg.data(), t.grad.data, bytes);
  dlopt::cuda::copy(db.data(), b, bytes);
  dlopt::TensorStep<MuonRule, T> d = t;
  d.param = static_cast<T*>(dp.data()), d.grad = static_cast<const T*>(dg.data());
  d.slots = {static_cast<T*>(db.data())};
  dlopt::cuda::step(&d, 1);
  dlopt::cuda::synchronize();
  dlopt::cuda::copy(p, dp.data(), bytes);
  dlopt::cuda::copy(b, db.data(), bytes);
}

template <class T>
void device_equals_emulation_and_cpu() {
  for (const Case& k : cases()) {
    std::vector<T> on_device, emulated;
    const double err = step_sequence<T>(k, 4, device_step<T>, &on_device);
    step_sequence<T>(k, 4, [](dlopt::TensorStep<MuonRule, T>& t) { emulated_step(&t, 1); }, &emulated);
    check(err <= tolerance<T>(k.bf16), "device step equals the CPU's at tolerance: " + type_name<T>() + " " +
                                           case_name(k) + " (error " + std::to_string(err) + ")");
    check(on_device == emulated, "device step equals its host emulation bit for bit: " + type_name<T>() + " " + case_name(k));
  }
}

/// make_device_optimizer("Muon") against make_optimizer over 10 steps of a tall and a wide matrix.
template <class T>
void device_optimizer_equals_host() {
  const int64_t rows[] = {40, 8}, cols[] = {8, 300};
  std::mt19937_64 rng(9);
  const std::map<std::string, double> h = {{"lr", 0.02}};
  std::vector<std::vector<T>> hp(2), start(2), g(2);
  std::vector<std::unique_ptr<dlopt::cuda::Buffer>> dp, dg;
  std::vector<dlopt::ParamView<T>> host_views, device_views;
  for (std::size_t i = 0; i < 2; ++i) {
    const int64_t size = rows[i] * cols[i];
    hp[i] = start[i] = normal_vector<T>(std::size_t(size), rng);
    dp.push_back(std::make_unique<dlopt::cuda::Buffer>(std::size_t(size) * sizeof(T), 0));
    dg.push_back(std::make_unique<dlopt::cuda::Buffer>(std::size_t(size) * sizeof(T), 0));
    dlopt::cuda::copy(dp[i]->data(), hp[i].data(), std::size_t(size) * sizeof(T));
    host_views.push_back({hp[i].data(), size, rows[i], 1});
    device_views.push_back({static_cast<T*>(dp[i]->data()), size, rows[i], 1});
  }
  auto host = dlopt::make_optimizer<T>("Muon", host_views, h);
  auto device = dlopt::make_device_optimizer<T>("Muon", device_views, h, nullptr);
  for (int s = 0; s < 10; ++s) {
    for (std::size_t i = 0; i < 2; ++i) {
      g[i] = normal_vector<T>(hp[i].size(), rng);
      dlopt::cuda::copy(dg[i]->data(), g[i].data(), g[i].size() * sizeof(T));
    }
    host->step({g[0].data(), g[1].data()});
    device->step({static_cast<const T*>(dg[0]->data()), static_cast<const T*>(dg[1]->data())});
  }
  dlopt::cuda::synchronize();
  for (std::size_t i = 0; i < 2; ++i) {
    std::vector<T> back(hp[i].size());
    dlopt::cuda::copy(back.data(), dp[i]->data(), back.size() * sizeof(T));
    const double err = moved_error(back, hp[i], start[i]);
    check(err <= tolerance<T>(false), "make_device_optimizer(\"Muon\") equals make_optimizer at tolerance: " +
                                          type_name<T>() + " tensor " + std::to_string(i) + " (error " + std::to_string(err) + ")");
  }
}

}  // namespace

int main() {
  check(dlopt::cuda::has_step<MuonRule>, "Muon has a CUDA step");
  products_equal_their_order<float, float>();
  products_equal_their_order<double, double>();
  products_equal_their_order<double, float>();
  norm_equals_its_order<float>();
  norm_equals_its_order<double>();
  const int64_t shapes[][2] = {{24, 70}, {70, 24}, {33, 33}, {1, 300}, {300, 1}};
  for (const auto& s : shapes)
    for (int nesterov = 0; nesterov < 2; ++nesterov)
      for (int round = 0; round < 2; ++round) {
        elementwise_equals_cpu<float>(s[0], s[1], nesterov, round);
        elementwise_equals_cpu<double>(s[0], s[1], nesterov, round);
      }
  emulated_step_equals_cpu<float>();
  emulated_step_equals_cpu<double>();
  if (!dlopt::cuda::is_available()) {
    std::printf("no CUDA device (or a build without CUDA): device comparisons skipped\n");
  } else {
    device_equals_emulation_and_cpu<float>();
    device_equals_emulation_and_cpu<double>();
    device_optimizer_equals_host<float>();
    device_optimizer_equals_host<double>();
  }
  return summary();
}
