// levels_digest: runs every registry optimizer for a few steps on fixed pseudo-random data (float32,
// float64, and bfloat16 parameters with int8 state and stochastic rounding), fits the linear models
// (mini-batch epochs over shuffled rows, full-batch passes, float32 and float64) and prints one digest
// of all the resulting parameter bits, after the instruction set the kernels ran with. The clones that a
// portable build compiles per x86-64 level must give the same bits: tests/cpp/test_portable.sh runs
// this natively and under QEMU posing as older CPUs and compares the digests. The closed form is not
// in the digest: its XᵀX is Eigen's GEMM compiled per level (models/gram_rows.hpp), which sums in
// its SIMD width's order and with FMA where the level has it; its coefficients follow on one line
// per type ("closed_form/4 c0 ... intercept", %.17g), which test_portable.sh compares to a tolerance.
// (Not a ctest test: on its own it has nothing to compare with.)

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "dlopt/dlopt.hpp"

namespace {

constexpr uint64_t kBasis = 1469598103934665603ull;
uint64_t digest = kBasis;  // FNV-1a over every run's digest
bool verbose = false;      // -v: also one line per run

/// FNV-1a of `bytes` bytes, continuing from `h`.
uint64_t fnv(uint64_t h, const void* data, std::size_t bytes) {
  const auto* b = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

/// Uniform values in [-1, 1) from a fixed linear congruential sequence.
struct Draws {
  uint64_t state;
  float next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return float(int32_t(state >> 32)) / 2147483648.0f;
  }
};

template <class T>
T from_float(float x) {
  if constexpr (std::is_same_v<T, dlopt::bfloat16>) {
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    return dlopt::bfloat16{uint16_t(bits >> 16)};
  } else {
    return T(x);
  }
}

/// A vector and a 70 x 90 matrix (matrix rules: the matrix only), five steps.
template <class T>
void run(const std::string& name, const dlopt::StorageOptions& options) {
  const bool matrix_only = name == "Muon";
  std::vector<T> vec(5003), mat(70 * 90), gvec(vec.size()), gmat(mat.size());
  Draws d{std::hash<std::string>{}(name)};
  for (T& x : vec) x = from_float<T>(d.next());
  for (T& x : mat) x = from_float<T>(d.next());
  std::vector<dlopt::ParamView<T>> params = {{mat.data(), int64_t(mat.size()), 70}};
  if (!matrix_only) params.push_back({vec.data(), int64_t(vec.size())});
  auto opt = dlopt::make_optimizer<T>(name, params, {}, options);
  for (int step = 0; step < 5; ++step) {
    for (T& x : gvec) x = from_float<T>(d.next());
    for (T& x : gmat) x = from_float<T>(d.next());
    if (matrix_only) opt->step({gmat.data()});
    else opt->step({gmat.data(), gvec.data()});
  }
  uint64_t own = fnv(kBasis, mat.data(), mat.size() * sizeof(T));
  if (!matrix_only) own = fnv(own, vec.data(), vec.size() * sizeof(T));
  digest = fnv(digest, &own, sizeof own);
  if (verbose) std::printf("%s/%zu %016llx\n", name.c_str(), sizeof(T), static_cast<unsigned long long>(own));
}

/// Linear models on 1500 x 67 rows (67: a row is whole 64-byte lines plus a tail; batch 256 x 67
/// features is enough work for the epoch's threads): squared-error fits of shuffled mini-batches with
/// sample weights and of full batches, and the loss, into the digest; the closed form's coefficients
/// and intercept into `closed_form`. (Not the logistic objective: its exp and log are glibc's, which
/// picks an FMA or an SSE2 variant by the CPU, and the double ones round differently now and then —
/// bits that are not the kernels'.)
template <class T>
void run_linear(std::string& closed_form) {
  constexpr int64_t n = 1500, d = 67;
  std::vector<T> X(n * d), y(n), sw(n);
  Draws draw{12345};
  for (T& x : X) x = T(draw.next());
  for (int64_t i = 0; i < n; ++i) {
    T z = 0;
    for (int64_t j = 0; j < d; ++j) z += X[i * d + j] * T(j % 7 - 3) / T(10);
    y[i] = z + T(0.1) * T(draw.next());
    sw[i] = T(1.5) + T(draw.next());
  }
  uint64_t own = kBasis;
  std::vector<T> coef(d), intercept(1);
  auto fit = [&](dlopt::Objective objective, const T* targets, const T* weights, int64_t batch) {
    std::fill(coef.begin(), coef.end(), T(0));
    intercept[0] = 0;
    dlopt::TrainConfig config;
    config.optimizer = "adam";
    config.epochs = 3;
    config.batch_size = batch;
    config.seed = 3;
    dlopt::LinearModel<T> model(objective, d, 1, coef.data(), intercept.data(), config);
    const dlopt::DataView<T> data{X.data(), n, d, targets, weights};
    model.fit(data);
    const double loss = model.loss(data);
    own = fnv(own, coef.data(), coef.size() * sizeof(T));
    own = fnv(own, intercept.data(), sizeof(T));
    own = fnv(own, &loss, sizeof loss);
  };
  fit(dlopt::Objective::SquaredError, y.data(), sw.data(), 256);
  fit(dlopt::Objective::SquaredError, y.data(), nullptr, 0);
  dlopt::solve_least_squares(dlopt::DataView<T>{X.data(), n, d, y.data(), sw.data()}, dlopt::LeastSquaresConfig{},
                             coef.data(), intercept.data());
  closed_form += "closed_form/" + std::to_string(sizeof(T));
  coef.push_back(intercept[0]);
  for (const T c : coef) {
    char text[32];
    std::snprintf(text, sizeof text, " %.17g", double(c));
    closed_form += text;
  }
  closed_form += "\n";
  digest = fnv(digest, &own, sizeof own);
  if (verbose) std::printf("linear/%zu %016llx\n", sizeof(T), static_cast<unsigned long long>(own));
}

}  // namespace

int main(int argc, char** argv) {
  verbose = argc > 1 && std::string(argv[1]) == "-v";
  for (const std::string& name : dlopt::optimizer_names()) {
    run<float>(name, {});
    run<double>(name, {});
  }
  dlopt::StorageOptions low;
  low.state_dtype = dlopt::StateDType::Int8;
  low.seed = 7;
  for (const char* name : {"Adam", "AdamW", "SGD", "Lion", "LAMB"}) run<dlopt::bfloat16>(name, low);
  std::string closed_form;
  run_linear<float>(closed_form);
  run_linear<double>(closed_form);
  std::printf("%s %016llx\n%s", dlopt::cpu_kernels(), static_cast<unsigned long long>(digest), closed_form.c_str());
  return 0;
}
