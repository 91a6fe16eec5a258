// dlopt-bench: how close dlopt's CPU optimizer steps come to this machine's memory bandwidth.
//
// In one run it measures
//   1. a STREAM-style roofline at every size: copy (a = b, 8 B/elem), triad (a = b + s·c, 12 B/elem)
//      and an in-place update (a = s·a + b, 12 B/elem: the read-modify-write pattern of a step);
//   2. for every optimizer × dtype × size: the step time, parameters/s, GB/s moved (the bytes an ideal
//      single pass must move: p, g and each used state buffer read, p and state written) and that GB/s as
//      a % of the in-place-update roofline, timed side by side (interleaved) with it;
//   3. the linear model: one epoch of mini-batch SGD (batch 256) on N × 100 float32 regression data
//      (N = --linear-rows, default 1e6 if free memory allows, else 2e5; 0 skips) and the closed-form
//      solve on the same data: time, rows/s and GB/s of X and y.
//
// Usage: dlopt-bench [--threads N] [--sizes 1e3,1e6,...] [--optimizers adam,sgd:momentum=0.9,...]
//                    [--dtypes float32,float64] [--min-time SECONDS] [--linear-rows N] [--cpu-time]
//                    [--json PATH|-]
// An optimizer spec is a registry name (case-insensitive) with optional `:key=value,...` hyperparameters.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#if __has_include(<unistd.h>)
#include <unistd.h>
#endif

#include "dlopt/dlopt.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace {

using Clock = std::chrono::steady_clock;

// Below this many elements dlopt runs a step on one thread; the roofline kernels do the same so
// that small sizes compare like with like.
constexpr int64_t kParallelMin = int64_t(1) << 16;

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "dlopt-bench: %s\n"
               "usage: dlopt-bench [--threads N] [--sizes 1e3,1e4,...] [--optimizers adam,sgd:momentum=0.9,...]\n"
               "                   [--dtypes float32,float64] [--min-time S] [--linear-rows N] [--cpu-time]\n"
               "                   [--json PATH|-]\n",
               why.c_str());
  std::exit(2);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct OptimizerSpec {
  std::string label;  // as given, e.g. "sgd:momentum=0.9"
  std::string name;
  std::map<std::string, double> hyper;
};

OptimizerSpec parse_spec(const std::string& s) {
  OptimizerSpec spec;
  spec.label = s;
  auto colon = s.find(':');
  spec.name = s.substr(0, colon);
  if (colon != std::string::npos)
    for (const std::string& kv : split(s.substr(colon + 1), ',')) {
      auto eq = kv.find('=');
      if (eq == std::string::npos) usage("bad hyperparameter '" + kv + "' in '" + s + "'");
      spec.hyper[kv.substr(0, eq)] = std::stod(kv.substr(eq + 1));
    }
  return spec;
}

/// Number of state buffers `name` uses under `hyper` (to count the bytes an ideal pass moves).
template <class Rule>
int slots_used(const std::map<std::string, double>& hyper) {
  typename Rule::Config c;
  c.visit([&](const char* key, auto& field) {
    auto it = hyper.find(key);
    if (it != hyper.end()) field = static_cast<std::decay_t<decltype(field)>>(it->second);
  });
  int n = 0;
  for (std::size_t k = 0; k < dlopt::num_slots<Rule>; ++k) n += Rule::uses_slot(c, int(k));
  return n;
}

int slots_used(const OptimizerSpec& spec) {
#define DLOPT_SLOTS(Rule) \
  if (lower(dlopt::Rule::name) == lower(spec.name)) return slots_used<dlopt::Rule>(spec.hyper);
  DLOPT_FOR_EACH_RULE(DLOPT_SLOTS)
#undef DLOPT_SLOTS
  usage("unknown optimizer '" + spec.name + "'");
}

// ---- timing --------------------------------------------------------------------------------------

/// Calls f `iters` times; seconds per call.
double time_batch(const std::function<void()>& f, int iters) {
  auto t0 = Clock::now();
  for (int i = 0; i < iters; ++i) f();
  return std::chrono::duration<double>(Clock::now() - t0).count() / iters;
}

/// Iterations per batch so a batch takes about `target` seconds.
int calibrate(const std::function<void()>& f, double target) {
  f();  // warm: first touch, lazy state
  double t = time_batch(f, 1);
  int iters = 1;
  while (t * iters < target && iters < (1 << 20)) iters *= 2;
  return iters;
}

/// Times several functions side by side: batches are interleaved, so a noisy neighbour hits them all
/// alike; returns the best seconds per call of each.
std::vector<double> time_interleaved(const std::vector<std::function<void()>>& fs, double min_time) {
  std::vector<int> iters;
  for (const auto& f : fs) iters.push_back(calibrate(f, 2e-3));
  std::vector<double> best(fs.size(), 1e30);
  auto start = Clock::now();
  for (int rep = 0;; ++rep) {
    for (std::size_t k = 0; k < fs.size(); ++k)
      best[k] = std::min(best[k], time_batch(fs[k], iters[k]));
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    if (rep >= 2 && elapsed >= min_time) break;
    if (rep >= 200) break;
  }
  return best;
}

// ---- roofline kernels (same threading rule as dlopt's kernel) -------------------------------------

template <class T>
void fill_parallel(T* a, int64_t n, T value) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) a[i] = value;
}

template <class T>
void copy_kernel(T* __restrict a, const T* __restrict b, int64_t n) {
  if (n < kParallelMin) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) a[i] = b[i];
    return;
  }
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) a[i] = b[i];
}

template <class T>
void triad_kernel(T* __restrict a, const T* __restrict b, const T* __restrict c, T s, int64_t n) {
  if (n < kParallelMin) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
    return;
  }
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
}

template <class T>
void update_kernel(T* __restrict a, const T* __restrict b, T s, int64_t n) {
  if (n < kParallelMin) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) a[i] = s * a[i] + b[i];
    return;
  }
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) a[i] = s * a[i] + b[i];
}

/// The same memory traffic as an optimizer step with `S` state buffers, and no maths worth the name:
/// p and every state buffer read-modify-written, g read. The tightest roof for that optimizer.
template <class T, int S>
void matched_kernel(T* __restrict p, const T* __restrict g, T* const* s, T a, int64_t n) {
  T* __restrict s0 = S > 0 ? s[0] : nullptr;
  T* __restrict s1 = S > 1 ? s[1] : nullptr;
  T* __restrict s2 = S > 2 ? s[2] : nullptr;
  auto body = [&](int64_t i) {
    const T gi = g[i];
    p[i] = a * p[i] + gi;
    if constexpr (S > 0) s0[i] = a * s0[i] + gi;
    if constexpr (S > 1) s1[i] = a * s1[i] + gi;
    if constexpr (S > 2) s2[i] = a * s2[i] + gi;
  };
  if (n < kParallelMin) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) body(i);
}

template <class T>
void matched(int slots, T* p, const T* g, T* const* s, int64_t n) {
  switch (slots) {
    case 0: return matched_kernel<T, 0>(p, g, s, T(0.5), n);
    case 1: return matched_kernel<T, 1>(p, g, s, T(0.5), n);
    case 2: return matched_kernel<T, 2>(p, g, s, T(0.5), n);
    default: return matched_kernel<T, 3>(p, g, s, T(0.5), n);
  }
}

// ---- results ---------------------------------------------------------------------------------------

struct Record {
  std::string kind;  // "roofline" or "step" or "linear_model"
  std::string name;  // kernel or optimizer label
  std::string dtype;
  int64_t size;
  double seconds;
  double bytes;           // per call
  double roof_gbps = 0;   // in-place update GB/s measured alongside (steps only)
  double matched_gbps = 0;  // same-traffic no-maths pass measured alongside (steps only)
};

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

template <class T>
const char* dtype_name() { return sizeof(T) == 4 ? "float32" : "float64"; }

// ---- the measurements --------------------------------------------------------------------------------

template <class T>
void roofline(int64_t n, double min_time, std::vector<Record>& out) {
  dlopt::AlignedVector<T> a(static_cast<std::size_t>(n)), b(static_cast<std::size_t>(n)), c(static_cast<std::size_t>(n));
  fill_parallel(a.data(), n, T(1));
  fill_parallel(b.data(), n, T(2));
  fill_parallel(c.data(), n, T(3));
  const T s = T(0.5);
  auto t = time_interleaved({[&] { copy_kernel(a.data(), b.data(), n); },
                             [&] { triad_kernel(a.data(), b.data(), c.data(), s, n); },
                             [&] { update_kernel(a.data(), b.data(), s, n); }},
                            min_time);
  const double e = double(sizeof(T)) * double(n);
  out.push_back({"roofline", "copy", dtype_name<T>(), n, t[0], 2 * e});
  out.push_back({"roofline", "triad", dtype_name<T>(), n, t[1], 3 * e});
  out.push_back({"roofline", "update", dtype_name<T>(), n, t[2], 3 * e});
}

template <class T>
void step_bench(const OptimizerSpec& spec, int64_t n, double min_time, std::vector<Record>& out) {
  const int slots = slots_used(spec);
  dlopt::AlignedVector<T> p(static_cast<std::size_t>(n)), g(static_cast<std::size_t>(n)), ra(static_cast<std::size_t>(n)), rb(static_cast<std::size_t>(n));
  fill_parallel(ra.data(), n, T(1));
  fill_parallel(rb.data(), n, T(2));
  fill_parallel(p.data(), n, T(0));
  fill_parallel(g.data(), n, T(0));
  {
    std::mt19937 rng(42);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    const int64_t pattern = std::min<int64_t>(n, 4096);  // cheap init: a repeated random pattern
    std::vector<T> pv(pattern), gv(pattern);
    for (int64_t i = 0; i < pattern; ++i) pv[i] = T(u(rng)), gv[i] = T(1e-2 * u(rng));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] = pv[i % pattern], g[i] = gv[i % pattern];
  }
  auto opt = dlopt::make_optimizer<T>(spec.name, {{p.data(), n}}, spec.hyper);
  const std::vector<const T*> grads = {g.data()};
  // The matched pass gets its own buffers (as many as the step touches), first-touched alike.
  std::vector<dlopt::AlignedVector<T>> mbuf(std::size_t(slots) + 1);
  for (auto& b : mbuf) {
    b.resize(static_cast<std::size_t>(n));
    fill_parallel(b.data(), n, T(1));
  }
  T* ms[3] = {};
  for (int k = 0; k < slots && k < 3; ++k) ms[k] = mbuf[std::size_t(k) + 1].data();
  auto t = time_interleaved({[&] { opt->step(grads); },
                             [&] { update_kernel(ra.data(), rb.data(), T(0.5), n); },
                             [&] { matched<T>(slots, mbuf[0].data(), g.data(), ms, n); }},
                            min_time);
  const double bytes = double(sizeof(T)) * double(n) * (1 + 2 * (1 + slots));
  const double roof = 3.0 * sizeof(T) * double(n) / t[1] / 1e9;
  Record r{"step", spec.label, dtype_name<T>(), n, t[0], bytes, roof};
  r.matched_gbps = bytes / t[2] / 1e9;
  out.push_back(r);
}

// Linear model epoch time: one epoch of mini-batch SGD (batch 256, rows reshuffled every epoch) of a
// LinearModel<float> on rows × 100 float32 regression data, and the closed-form least-squares solve
// on the same data. Bytes are those of X and y (one pass over the data).

/// Free physical memory in bytes, or 0 if unknown.
double free_memory() {
#if defined(_SC_AVPHYS_PAGES) && defined(_SC_PAGESIZE)
  const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) return double(pages) * double(page);
#endif
  return 0;
}

/// Uniform in [-1, 1) from an element index (splitmix64): reproducible and parallel.
inline float hashed_uniform(uint64_t i) {
  uint64_t z = i * 0x9E3779B97F4A7C15ull + 0x1234567ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return float(double(z >> 40) / double(uint64_t(1) << 23) - 1.0);
}

/// The linear model's epoch and closed form; with `cpu_time`, timed in process CPU time instead of
/// wall time (with one thread, a machine shared with other work then slows it less: time spent
/// descheduled is not counted).
void linear_model_bench(int64_t rows, double min_time, bool cpu_time, std::vector<Record>& out) {
  constexpr int64_t d = 100, batch = 256;
  if (rows < 0) {  // default: 1e6 rows (400 MB) if there is room for them, else 2e5
    const double need = 1e6 * double(d + 1) * sizeof(float) * 2.5;
    const double have = free_memory();
    rows = (have == 0 || have >= need) ? 1000000 : 200000;
  }
  if (rows == 0) {
    std::printf("\nlinear model: skipped (--linear-rows 0)\n");
    return;
  }
  std::printf("\nlinear model, %lld x %lld float32 regression (X %.0f MB)\n", (long long)rows, (long long)d,
              double(rows) * d * sizeof(float) / 1e6);
  std::fflush(stdout);
  dlopt::AlignedVector<float> X(static_cast<std::size_t>(rows * d)), y(static_cast<std::size_t>(rows));
  std::vector<float> w_true(d);
  for (int64_t j = 0; j < d; ++j) w_true[j] = hashed_uniform(uint64_t(1) << 62 | uint64_t(j));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; ++i) {
    float* x = X.data() + i * d;
    float acc = 0.5f + 0.01f * hashed_uniform(uint64_t(1) << 61 | uint64_t(i));
    for (int64_t j = 0; j < d; ++j) {
      x[j] = hashed_uniform(uint64_t(i * d + j));
      acc += x[j] * w_true[j];
    }
    y[i] = acc;
  }
  const dlopt::DataView<float> data{X.data(), rows, d, y.data(), nullptr};
  const double bytes = double(rows) * (d + 1) * sizeof(float);

  std::vector<float> coef(d, 0.0f), intercept(1, 0.0f);
  dlopt::TrainConfig cfg;
  cfg.optimizer = "sgd";
  cfg.lr = 0.01;
  cfg.batch_size = batch;
  cfg.epochs = 1;
  dlopt::LinearModel<float> model(dlopt::Objective::SquaredError, d, 1, coef.data(), intercept.data(), cfg);
  // Best of at least two timed epochs (after one untimed), up to min_time seconds of epochs.
  auto best_of = [&](const std::function<void()>& f) {
    f();
    double best = 1e30, spent = 0;
    for (int rep = 0; rep < 2 || (spent < min_time && rep < 10); ++rep) {
      const auto t0 = Clock::now();
      const std::clock_t c0 = std::clock();
      f();
      const double t = cpu_time ? double(std::clock() - c0) / CLOCKS_PER_SEC
                                : std::chrono::duration<double>(Clock::now() - t0).count();
      best = std::min(best, t);
      spent += t;
    }
    return best;
  };
  const double epoch = best_of([&] { model.partial_fit(data); });
  const double loss = model.loss_curve().back();
  std::vector<float> cf(d);
  float b = 0;
  const double closed = best_of([&] { dlopt::solve_least_squares(data, dlopt::LeastSquaresConfig{}, cf.data(), &b); });
  double err = 0;
  for (int64_t j = 0; j < d; ++j) err = std::max(err, double(std::abs(cf[j] - w_true[j])));
  std::printf("%-34s %12s %12s %12s\n", "", "time [ms]", "rows/s", "GB/s");
  std::printf("%-34s %12.1f %12.3e %12.2f   (last epoch loss %.3g)\n", "sgd epoch, batch 256, shuffled",
              epoch * 1e3, double(rows) / epoch, bytes / epoch / 1e9, loss);
  std::printf("%-34s %12.1f %12.3e %12.2f   (max |w - w_true| %.2g)\n", "closed form (normal equations)",
              closed * 1e3, double(rows) / closed, bytes / closed / 1e9, err);
  std::fflush(stdout);
  out.push_back({"linear_model", "sgd_epoch_batch256", "float32", rows, epoch, bytes});
  out.push_back({"linear_model", "closed_form", "float32", rows, closed, bytes});
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> sizes = {1000, 10000, 100000, 1000000, 10000000, 50000000, 100000000};
  std::vector<std::string> dtypes = {"float32", "float64"};
  std::vector<OptimizerSpec> specs;
  std::string json_path;
  double min_time = 0.25;
  int threads = 0;
  int64_t linear_rows = -1;  // -1: by free memory
  bool cpu_time = false;     // the linear model in CPU time

  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--threads") threads = std::stoi(value());
    else if (a == "--sizes") {
      sizes.clear();
      for (const std::string& s : split(value(), ',')) sizes.push_back(int64_t(std::stod(s)));
    } else if (a == "--optimizers") {
      // Specs are separated by commas, except inside a spec's `:k=v,k=v` part: a token without
      // ':' that contains '=' continues the previous spec.
      for (const std::string& tok : split(value(), ',')) {
        if (tok.find('=') != std::string::npos && tok.find(':') == std::string::npos && !specs.empty())
          specs.back() = parse_spec(specs.back().label + "," + tok);
        else
          specs.push_back(parse_spec(tok));
      }
    } else if (a == "--dtypes") dtypes = split(value(), ',');
    else if (a == "--min-time") min_time = std::stod(value());
    else if (a == "--json") json_path = value();
    else if (a == "--linear-rows") {
      const double v = std::stod(value());
      if (!(v >= 0) || v >= 4294967295.0) usage("--linear-rows: expected 0 .. 2^32 - 2");
      linear_rows = int64_t(v);
    }
    else if (a == "--cpu-time") cpu_time = true;
    else if (a == "-h" || a == "--help") usage("help");
    else usage("unknown option '" + a + "'");
  }
  if (specs.empty()) {
    // Every elementwise rule (matrix rules such as Muon are GEMM-bound: not a bandwidth benchmark).
#define DLOPT_ELEMENTWISE(Rule) \
  if (!dlopt::Rule::matrix) specs.push_back(parse_spec(lower(dlopt::Rule::name)));
    DLOPT_FOR_EACH_RULE(DLOPT_ELEMENTWISE)
#undef DLOPT_ELEMENTWISE
    specs.insert(specs.begin() + 1, parse_spec("sgd:momentum=0.9"));
    specs.push_back(parse_spec("adam:amsgrad=1"));
    specs.push_back(parse_spec("rmsprop:momentum=0.9,centered=1"));
  }
  for (const auto& d : dtypes)
    if (d != "float32" && d != "float64") usage("unknown dtype '" + d + "'");
  if (threads > 0) {
    dlopt::set_num_threads(threads);
#if defined(_OPENMP)
    omp_set_num_threads(threads);
#endif
  }

  std::printf("dlopt-bench %s, %d thread(s), best of interleaved batches (>= %.2f s per row)\n",
              DLOPT_VERSION, dlopt::get_num_threads(), min_time);
  std::vector<Record> records;

  std::printf("\nroofline (GB/s)\n%-8s %12s %10s %10s %10s\n", "dtype", "size", "copy", "triad", "update");
  for (const auto& d : dtypes)
    for (int64_t n : sizes) {
      std::size_t first = records.size();
      if (d == "float32") roofline<float>(n, min_time, records);
      else roofline<double>(n, min_time, records);
      auto gbps = [&](std::size_t k) { return records[first + k].bytes / records[first + k].seconds / 1e9; };
      std::printf("%-8s %12lld %10.1f %10.1f %10.1f\n", d.c_str(), (long long)n, gbps(0), gbps(1), gbps(2));
      std::fflush(stdout);
    }

  std::printf("\noptimizer steps, each timed interleaved with two roofs:\n"
              "  %% roof    = GB/s / in-place-update (a = s*a + b) GB/s\n"
              "  %% matched = GB/s / GB/s of a no-maths pass with the step's own traffic\n"
              "               (p and each state buffer read and written, g read)\n");
  std::printf("%-34s %-8s %12s %12s %12s %9s %8s %9s\n", "optimizer", "dtype", "size", "step [us]",
              "params/s", "GB/s", "% roof", "% matched");
  for (const auto& spec : specs)
    for (const auto& d : dtypes)
      for (int64_t n : sizes) {
        try {
          if (d == "float32") step_bench<float>(spec, n, min_time, records);
          else step_bench<double>(spec, n, min_time, records);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "dlopt-bench: %s: %s\n", spec.label.c_str(), e.what());
          return 1;
        }
        const Record& r = records.back();
        const double gbps = r.bytes / r.seconds / 1e9;
        std::printf("%-34s %-8s %12lld %12.2f %12.3e %9.1f %7.1f%% %8.1f%%\n", spec.label.c_str(),
                    d.c_str(), (long long)n, r.seconds * 1e6, double(n) / r.seconds, gbps,
                    100 * gbps / r.roof_gbps, 100 * gbps / r.matched_gbps);
        std::fflush(stdout);
      }

  try {
    linear_model_bench(linear_rows, min_time, cpu_time, records);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dlopt-bench: linear model: %s\n", e.what());
    return 1;
  }

  if (!json_path.empty()) {
    std::FILE* f = json_path == "-" ? stdout : std::fopen(json_path.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "dlopt-bench: cannot write %s\n", json_path.c_str());
      return 1;
    }
    std::fprintf(f, "{\"version\": \"%s\", \"threads\": %d, \"records\": [\n", DLOPT_VERSION,
                 dlopt::get_num_threads());
    for (std::size_t i = 0; i < records.size(); ++i) {
      const Record& r = records[i];
      std::fprintf(f,
                   "  {\"kind\": \"%s\", \"name\": \"%s\", \"dtype\": \"%s\", \"size\": %lld, "
                   "\"seconds\": %.9g, \"bytes\": %.17g, \"gbps\": %.6g, \"roof_gbps\": %.6g, "
                   "\"matched_gbps\": %.6g}%s\n",
                   r.kind.c_str(), json_escape(r.name).c_str(), r.dtype.c_str(), (long long)r.size,
                   r.seconds, r.bytes, r.bytes / r.seconds / 1e9, r.roof_gbps, r.matched_gbps,
                   i + 1 < records.size() ? "," : "");
    }
    std::fprintf(f, "]}\n");
    if (f != stdout) std::fclose(f);
  }
  return 0;
}
