// C++ tests of the CUDA backend (dlopt::cuda::step). Everywhere: a device step is checked like a
// host step and, without a usable device, throws before changing anything; and the kernel body
// (dlopt/cuda/multi_tensor.hpp) run on the host for every (chunk, thread) of a launch equals the CPU
// step bit for bit, which checks the launch's indexing without a GPU — native buffers, every storage
// format (bfloat16 / float16 parameters, stochastic rounding, master weights, bfloat16 and 8-bit
// state), and the reduction phase of LAMB and LARS (cpu::reduce's order). With a CUDA device:
// every rule on the device equals the host result over 50 steps, for several tensors in one launch
// (odd sizes, several chunks, an unaligned buffer), in float and double; make_device_optimizer equals
// make_optimizer (Schedule-Free's train / eval switch, bfloat16 / int8 state, checkpoints both ways).

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dlopt/cuda/adafactor.hpp"
#include "dlopt/cuda/multi_tensor.hpp"
#include "dlopt/cuda/schedule_free.hpp"
#include "dlopt/dlopt.hpp"
#include "harness.hpp"

namespace {

using namespace dlopt_test;

void checks_before_the_device() {
  std::vector<float> p(8, 1.0f), g(8, 1.0f), m(8), v(8);
  dlopt::AdamConfig config;
  dlopt::TensorScalars scalars;
  dlopt::TensorStep<dlopt::AdamRule, float> t;
  t.param = p.data();
  t.grad = g.data();
  t.slots = {m.data(), nullptr, nullptr};  // exp_avg_sq missing
  t.size = 8;
  t.config = &config;
  t.scalars = &scalars;
  bool invalid = false;
  try {
    dlopt::cuda::step(&t, 1);
  } catch (const dlopt::InvalidArgument&) {
    invalid = true;
  } catch (...) {
  }
  check(invalid && scalars.step == 0, "a bad device step is an InvalidArgument, before anything");

  if (dlopt::cuda::is_available()) return;
  t.slots = {m.data(), v.data(), nullptr};
  bool refused = false;
  try {
    dlopt::cuda::step(&t, 1);
  } catch (const std::runtime_error&) {  // NotCompiled without CUDA; no device otherwise
    refused = true;
  }
  check(refused && scalars.step == 0 && p[0] == 1.0f && m[0] == 0.0f,
        "without a device, cuda::step throws and changes nothing");
  check(dlopt::cuda::device_count() == 0 || DLOPT_HAS_CUDA, "device_count is 0 without CUDA");
}

// The launch of cuda::run, emulated on the host: the same block table, every chunk, each phase of
// a chunk run by every thread in turn before the next (the kernel's barriers).
template <class Rule, class T>
void emulate_launch(const dlopt::cpu::Segment<Rule, T>* segments, std::size_t n) {
  namespace cd = dlopt::cuda::detail;
  std::vector<int64_t> first_chunk(n + 1);
  const int64_t total = cd::chunk_prefix(segments, n, first_chunk.data());
  auto shared = std::make_unique<cd::StageShared<Rule>>();
  std::memset(static_cast<void*>(shared.get()), 0xa5, sizeof(cd::StageShared<Rule>));  // stale, as on a GPU
  const auto all_threads = [](const auto& phase) {
    for (int thread = 0; thread < cd::kThreads; ++thread) phase(thread);
  };
  for (int64_t chunk = 0; chunk < total; ++chunk)
    cd::process_chunk<Rule, T>(first_chunk.data(), segments, int64_t(n), chunk, *shared, all_threads);
}

// The reduction phase of cuda::run (Rule::reductions > 0), emulated the same way: every chunk's
// sums, then Rule::finish of every tensor on the segments the update then reads.
template <class Rule, class T>
void emulate_reduce(dlopt::cpu::Segment<Rule, T>* segments, std::size_t n) {
  if constexpr (Rule::reductions > 0) {
    namespace cd = dlopt::cuda::detail;
    std::vector<int64_t> first_chunk(n + 1);
    const int64_t total = cd::chunk_prefix(segments, n, first_chunk.data());
    auto shared = std::make_unique<cd::ReduceShared<Rule>>();
    std::memset(static_cast<void*>(shared.get()), 0xa5, sizeof(cd::ReduceShared<Rule>));  // stale
    const auto all_threads = [](const auto& phase) {
      for (int thread = 0; thread < cd::kThreads; ++thread) phase(thread);
    };
    std::vector<double> partial(std::size_t(total) * Rule::reductions, -1.0);
    for (int64_t chunk = 0; chunk < total; ++chunk)
      cd::reduce_chunk<Rule, T>(first_chunk.data(), segments, int64_t(n), chunk, *shared, all_threads, partial.data());
    for (std::size_t k = 0; k < n; ++k) cd::finish_tensor<Rule, T>(first_chunk.data(), segments, int64_t(k), partial.data());
  } else {
    (void)segments, (void)n;
  }
}

template <class Rule, class T>
void emulate() {
  using Config = typename Rule::Config;
  constexpr std::size_t S = dlopt::num_slots<Rule>;
  const Config config{};
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal;
  const int64_t sizes[] = {0, 1, 3, 4097, 10001, 8192, 5, 0};
  const std::size_t offsets[] = {0, 0, 0, 0, 1, 0, 1, 0};  // 1: an unaligned buffer
  constexpr std::size_t n = 8;
  // Buffers: [tensor][0 = param, 1 = grad, 2.. = slots], for the CPU (a) and the emulation (b).
  std::vector<std::vector<std::vector<T>>> a(n), b(n);
  for (std::size_t i = 0; i < n; ++i) {
    a[i].resize(2 + S);
    for (std::size_t k = 0; k < 2 + S; ++k) {
      a[i][k].resize(std::size_t(sizes[i]) + offsets[i] + 4);
      const T init = k < 2 ? T(0) : T(Rule::slot_init(config, int(k - 2)));
      for (T& x : a[i][k]) x = k == 0 ? T(normal(rng)) : init;
    }
    b[i] = a[i];
  }
  std::vector<dlopt::TensorScalars> sa(n), sb(n);
  auto steps = [&](std::vector<std::vector<std::vector<T>>>& bufs, std::vector<dlopt::TensorScalars>& sc) {
    std::vector<dlopt::TensorStep<Rule, T>> t(n);
    for (std::size_t i = 0; i < n; ++i) {
      t[i].param = bufs[i][0].data() + offsets[i];
      t[i].grad = bufs[i][1].data() + offsets[i];
      for (std::size_t k = 0; k < S; ++k)
        t[i].slots[k] = Rule::uses_slot(config, int(k)) ? bufs[i][2 + k].data() + offsets[i] : nullptr;
      t[i].size = sizes[i];
      t[i].config = &config;
      t[i].scalars = &sc[i];
    }
    return t;
  };
  for (int step = 0; step < 20; ++step) {
    for (std::size_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < sizes[i]; ++j)
        a[i][1][std::size_t(j) + offsets[i]] = b[i][1][std::size_t(j) + offsets[i]] = T(normal(rng));
    auto ta = steps(a, sa);
    dlopt::step(ta.data(), n);
    auto tb = steps(b, sb);
    dlopt::detail::check_step(tb.data(), n);
    auto& segments = dlopt::detail::begin_step(tb.data(), n);
    emulate_reduce(segments.data(), n);
    emulate_launch(segments.data(), n);
  }
  // Bitwise: the library and this test are compiled without multiply-add contraction (see the
  // top-level CMakeLists.txt), so a rule rounds the same in the CPU loop and in the kernel body.
  const double tol = 0;
  double worst = 0;
  bool untouched = true;  // elements outside [offset, offset + size) stay as they were
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k = 0; k < 2 + S; ++k)
      for (std::size_t j = 0; j < a[i][k].size(); ++j) {
        const bool inside = j >= offsets[i] && j < offsets[i] + std::size_t(sizes[i]);
        const double rel = std::abs(double(a[i][k][j]) - double(b[i][k][j])) / (1 + std::abs(double(a[i][k][j])));
        worst = std::fmax(worst, rel);
        if (!inside && k == 0 && b[i][k][j] != a[i][k][j]) untouched = false;
      }
  check(worst <= tol && untouched && sb[4].step == 20,
        std::string("emulated launch equals the CPU step: ") + Rule::name +
            (sizeof(T) == 4 ? "<float>" : "<double>") + " (worst rel " + std::to_string(worst) + ")");
}

// ---- storage formats: the emulated kernel body equals cpu::run byte for byte -----------------------

// The hyperparameters a test steps with: the defaults, but momentum for SGD (else it has no state).
template <class Rule>
typename Rule::Config config_for() {
  typename Rule::Config c{};
  if constexpr (std::is_same_v<Rule, dlopt::SGDRule>) c.momentum = 0.9;
  return c;
}

std::size_t element_bytes(dlopt::Storage s) {
  switch (s) {
    case dlopt::Storage::Float64: return 8;
    case dlopt::Storage::Float32: return 4;
    case dlopt::Storage::BFloat16:
    case dlopt::Storage::Float16: return 2;
    default: return 1;
  }
}

// One buffer of a tensor, in any storage: its bytes and (8 bits) block scales.
struct Stored {
  dlopt::Storage storage = dlopt::Storage::Float32;
  std::vector<unsigned char> bytes;
  std::vector<float> scale;
  dlopt::Buffer buffer() {
    return {bytes.data(), storage, scale.empty() ? nullptr : scale.data()};
  }
  void resize(dlopt::Storage s, int64_t n) {
    storage = s;
    bytes.assign(std::size_t(n) * element_bytes(s) + 16, 0);
    if (element_bytes(s) == 1) scale.assign(std::size_t((n + dlopt::kQuantBlock - 1) / dlopt::kQuantBlock), 0.0f);
  }
  bool operator==(const Stored& o) const { return bytes == o.bytes && scale == o.scale; }
};

struct FormatCase {
  const char* name;
  dlopt::Storage param;   // the parameters' (and gradients') storage
  dlopt::StateDType state;
  bool stochastic;
  bool master;
};

// A device copy of a Stored buffer (bytes and scales), and of a master copy.
struct DeviceStored {
  std::unique_ptr<dlopt::cuda::Buffer> bytes, scale;
  static std::unique_ptr<dlopt::cuda::Buffer> of(const void* host, std::size_t n) {
    if (n == 0) return nullptr;
    auto b = std::make_unique<dlopt::cuda::Buffer>(n, 0);
    dlopt::cuda::copy(b->data(), host, n);
    return b;
  }
  static void back(void* host, const std::unique_ptr<dlopt::cuda::Buffer>& b, std::size_t n) {
    if (n) dlopt::cuda::copy(host, b->data(), n);
  }
};

// One step sequence of every tensor, on the CPU (a) and (b) through the emulated kernel or, with
// `device`, on the GPU (dlopt::cuda::step on device copies of b's buffers).
template <class Rule, class T>
void staged_equals_cpu(const FormatCase& f, bool device = false) {
  constexpr std::size_t S = dlopt::num_slots<Rule>;
  const auto config = config_for<Rule>();
  const int64_t sizes[] = {1, 255, 257, 1000, 4095, 4097, 10001, 8192, 0, 12288};
  constexpr std::size_t n = sizeof(sizes) / sizeof(sizes[0]);
  struct Tensor {
    Stored p, g, s[S + 1];
    std::vector<float> master;
    dlopt::TensorScalars scalars;
  };
  std::vector<Tensor> a(n);
  std::mt19937_64 rng(11);
  std::normal_distribution<double> normal;
  auto fill = [&](Stored& b, int64_t size, double scale) {
    std::vector<float> x{};
    x.resize(std::size_t(size));
    for (float& v : x) v = float(scale * normal(rng));
    if (b.storage == dlopt::Storage::Float64) {
      for (int64_t j = 0; j < size; ++j) reinterpret_cast<double*>(b.bytes.data())[j] = scale * normal(rng);
    } else {
      dlopt::from_float(b.buffer(), size, x.data());
    }
  };
  for (std::size_t i = 0; i < n; ++i) {
    Tensor& t = a[i];
    t.p.resize(f.param, sizes[i]);
    t.g.resize(f.param, sizes[i]);
    fill(t.p, sizes[i], 1.0);
    for (std::size_t k = 0; k < S; ++k) {
      if (!Rule::uses_slot(config, int(k))) continue;
      t.s[k].resize(dlopt::slot_storage(Rule::slot_kind(int(k)), f.state, f.param), sizes[i]);
      dlopt::fill_state(t.s[k].buffer(), sizes[i], Rule::slot_init(config, int(k)));
    }
    if (f.master) {
      t.master.resize(std::size_t(sizes[i]));
      dlopt::to_float(t.p.buffer(), sizes[i], t.master.data());
    }
  }
  std::vector<Tensor> b = a;
  const Stored initial = a[7].p;
  auto steps = [&](std::vector<Tensor>& ts) {
    std::vector<dlopt::TensorStep<Rule, T>> out(n);
    for (std::size_t i = 0; i < n; ++i) {
      out[i].param = ts[i].p.buffer();
      out[i].grad = ts[i].g.buffer();
      for (std::size_t k = 0; k < S; ++k)
        out[i].slots[k] = ts[i].s[k].bytes.empty() ? dlopt::Buffer() : ts[i].s[k].buffer();
      out[i].master = f.master ? ts[i].master.data() : nullptr;
      out[i].size = sizes[i];
      out[i].config = &config;
      out[i].scalars = &ts[i].scalars;
      out[i].rounding = {f.stochastic, 1234, i};
    }
    return out;
  };
  // With `device`: the buffers of b on the GPU, and the steps taken through them.
  std::vector<std::vector<DeviceStored>> d(device ? n : 0);
  std::vector<std::unique_ptr<dlopt::cuda::Buffer>> dmaster(device ? n : 0);
  auto to_device = [](Stored& h) {
    return DeviceStored{DeviceStored::of(h.bytes.data(), h.bytes.size()),
                        DeviceStored::of(h.scale.data(), h.scale.size() * sizeof(float))};
  };
  auto device_buffer = [](const Stored& h, const DeviceStored& x) {
    return dlopt::Buffer(x.bytes->data(), h.storage, x.scale ? static_cast<float*>(x.scale->data()) : nullptr);
  };
  for (std::size_t i = 0; i < d.size(); ++i) {
    d[i].push_back(to_device(b[i].p));
    d[i].push_back(to_device(b[i].g));
    for (std::size_t k = 0; k < S; ++k) d[i].push_back(to_device(b[i].s[k]));
    dmaster[i] = DeviceStored::of(b[i].master.data(), b[i].master.size() * sizeof(float));
  }
  for (int step = 0; step < 5; ++step) {
    for (std::size_t i = 0; i < n; ++i) {
      fill(a[i].g, sizes[i], step % 2 ? 1.0 : 1e-3);
      b[i].g = a[i].g;
    }
    auto ta = steps(a);
    dlopt::step(ta.data(), n);
    auto tb = steps(b);
    if (device) {
      for (std::size_t i = 0; i < n; ++i) {
        dlopt::cuda::copy(d[i][1].bytes->data(), b[i].g.bytes.data(), b[i].g.bytes.size());
        tb[i].param = device_buffer(b[i].p, d[i][0]);
        tb[i].grad = device_buffer(b[i].g, d[i][1]);
        for (std::size_t k = 0; k < S; ++k)
          if (tb[i].slots[k]) tb[i].slots[k] = device_buffer(b[i].s[k], d[i][2 + k]);
        if (f.master) tb[i].master = dmaster[i] ? static_cast<float*>(dmaster[i]->data()) : nullptr;
      }
      dlopt::cuda::step(tb.data(), n);
      continue;
    }
    dlopt::detail::check_step(tb.data(), n);
    auto& segments = dlopt::detail::begin_step(tb.data(), n);
    emulate_reduce(segments.data(), n);
    emulate_launch(segments.data(), n);
  }
  for (std::size_t i = 0; i < d.size(); ++i) {  // the device's results into b
    dlopt::cuda::synchronize();
    DeviceStored::back(b[i].p.bytes.data(), d[i][0].bytes, b[i].p.bytes.size());
    for (std::size_t k = 0; k < S; ++k) {
      DeviceStored::back(b[i].s[k].bytes.data(), d[i][2 + k].bytes, b[i].s[k].bytes.size());
      DeviceStored::back(b[i].s[k].scale.data(), d[i][2 + k].scale, b[i].s[k].scale.size() * sizeof(float));
    }
    DeviceStored::back(b[i].master.data(), dmaster[i], b[i].master.size() * sizeof(float));
  }
  bool equal = true, moved = false;
  for (std::size_t i = 0; i < n; ++i) {
    equal = equal && a[i].p == b[i].p && a[i].master == b[i].master;
    for (std::size_t k = 0; k < S; ++k) equal = equal && a[i].s[k] == b[i].s[k];
  }
  // The steps did something: the parameters of the 8192-element tensor changed.
  moved = a[7].scalars.step == 5 && b[7].scalars.step == 5 && !(a[7].p == initial);
  check(equal && moved, std::string(device ? "device" : "emulated launch") + " equals the CPU bit for bit: " + Rule::name +
                            (sizeof(T) == 4 ? "<float>, " : "<double>, ") + f.name);
}

template <class Rule, class T>
void storage_formats(bool device) {
  if constexpr (!Rule::matrix) {
    using dlopt::StateDType;
    using dlopt::Storage;
    const Storage wide = dlopt::storage_of<T>;
    const Storage p16 = sizeof(T) == 4 ? Storage::BFloat16 : Storage::Float64;  // 16-bit params: float only
    const FormatCase cases[] = {
        {"bfloat16 state, stochastic", wide, StateDType::BFloat16, true, false},
        {"bfloat16 state, nearest", wide, StateDType::BFloat16, false, false},
        {"int8 state, stochastic", wide, StateDType::Int8, true, false},
        {"int8 state, nearest", wide, StateDType::Int8, false, false},
        {"float32 state", wide, StateDType::Float32, true, false},
    };
    for (const FormatCase& f : cases) staged_equals_cpu<Rule, T>(f, device);
    if constexpr (sizeof(T) == 4) {
      const FormatCase sixteen[] = {
          {"bfloat16 params, stochastic", p16, StateDType::Default, true, false},
          {"bfloat16 params, nearest", p16, StateDType::Default, false, false},
          {"float16 params, nearest", Storage::Float16, StateDType::Default, false, false},
          {"float16 params, stochastic", Storage::Float16, StateDType::Default, true, false},
          {"bfloat16 params, master weights", p16, StateDType::Default, true, true},
          {"float16 params, master weights, int8 state", Storage::Float16, StateDType::Int8, true, true},
          {"bfloat16 params, int8 state, stochastic", p16, StateDType::Int8, true, false},
          {"bfloat16 params, bfloat16 state, stochastic", p16, StateDType::BFloat16, true, false},
      };
      for (const FormatCase& f : sixteen) staged_equals_cpu<Rule, T>(f, device);
    }
  }
}

// Host and device copies of one tensor's buffers.
template <class Rule, class T>
void emulated_launch_equals_cpu() {
  if constexpr (!Rule::matrix) emulate<Rule, T>();  // matrix rules have no elementwise kernel body
}

template <class Rule, class T>
struct Tensor {
  static constexpr std::size_t S = dlopt::num_slots<Rule>;
  int64_t size = 0;
  std::size_t offset = 0;  // elements: an offset of 1 makes every device buffer unaligned
  std::vector<T> p, g;
  std::vector<std::vector<T>> s;
  std::unique_ptr<dlopt::cuda::Buffer> dp, dg;
  std::vector<std::unique_ptr<dlopt::cuda::Buffer>> ds;
  dlopt::TensorScalars host_scalars, device_scalars;

  T* at(const std::unique_ptr<dlopt::cuda::Buffer>& b) const { return static_cast<T*>(b->data()) + offset; }
};

template <class Rule, class T>
void device_equals_host() {
  using Config = typename Rule::Config;
  constexpr std::size_t S = dlopt::num_slots<Rule>;
  const Config config{};
  std::mt19937_64 rng(42);
  std::normal_distribution<double> normal;
  const int64_t sizes[] = {1, 3, 4097, 10001, 7};
  const std::size_t offsets[] = {0, 0, 0, 0, 1};
  std::vector<Tensor<Rule, T>> ts(5);
  for (std::size_t i = 0; i < ts.size(); ++i) {
    auto& t = ts[i];
    t.size = sizes[i];
    t.offset = offsets[i];
    const std::size_t bytes = (std::size_t(t.size) + t.offset) * sizeof(T);
    t.p.resize(std::size_t(t.size));
    for (T& x : t.p) x = T(normal(rng));
    t.dp = std::make_unique<dlopt::cuda::Buffer>(bytes, 0);
    t.dg = std::make_unique<dlopt::cuda::Buffer>(bytes, 0);
    dlopt::cuda::copy(t.at(t.dp), t.p.data(), std::size_t(t.size) * sizeof(T));
    t.s.resize(S);
    for (std::size_t k = 0; k < S; ++k) {
      t.s[k].assign(std::size_t(t.size), T(Rule::slot_init(config, int(k))));
      t.ds.push_back(std::make_unique<dlopt::cuda::Buffer>(bytes, 0));
      dlopt::cuda::copy(t.at(t.ds[k]), t.s[k].data(), std::size_t(t.size) * sizeof(T));
    }
  }
  std::vector<dlopt::TensorStep<Rule, T>> host(ts.size()), device(ts.size());
  for (int step = 0; step < 50; ++step) {
    for (std::size_t i = 0; i < ts.size(); ++i) {
      auto& t = ts[i];
      t.g.resize(std::size_t(t.size));
      for (T& x : t.g) x = T(normal(rng));
      dlopt::cuda::copy(t.at(t.dg), t.g.data(), std::size_t(t.size) * sizeof(T));
      host[i].param = t.p.data();
      host[i].grad = t.g.data();
      device[i].param = t.at(t.dp);
      device[i].grad = t.at(t.dg);
      for (std::size_t k = 0; k < S; ++k) {
        const bool used = Rule::uses_slot(config, int(k));
        host[i].slots[k] = used ? t.s[k].data() : nullptr;
        device[i].slots[k] = used ? t.at(t.ds[k]) : nullptr;
      }
      host[i].size = device[i].size = t.size;
      host[i].config = device[i].config = &config;
      host[i].scalars = &t.host_scalars;
      device[i].scalars = &t.device_scalars;
    }
    dlopt::step(host.data(), host.size());
    dlopt::cuda::step(device.data(), device.size());
  }
  dlopt::cuda::synchronize();
  // nvcc builds the kernels with --fmad=false and computes sqrt and division correctly rounded by
  // default, so the device should equal the host bitwise; 1e-6 is issue 5's bound.
  const double tol = 1e-6;
  for (std::size_t i = 0; i < ts.size(); ++i) {
    auto& t = ts[i];
    std::vector<T> back(std::size_t(t.size));
    dlopt::cuda::copy(back.data(), t.at(t.dp), back.size() * sizeof(T));
    double worst = 0;
    for (std::size_t j = 0; j < back.size(); ++j)
      worst = std::fmax(worst, std::abs(double(back[j]) - double(t.p[j])) / (1 + std::abs(double(t.p[j]))));
    check(worst <= tol, std::string(Rule::name) + (sizeof(T) == 4 ? "<float>" : "<double>") +
                            ": device equals host, tensor " + std::to_string(i) + " (worst rel " +
                            std::to_string(worst) + ")");
    check(t.device_scalars.step == 50, std::string(Rule::name) + ": device step counter");
  }
}

// ---- Adafactor (cuda/adafactor.hpp): the five launches emulated, and on the device ------------------

// Adafactor's launches, emulated on the host on scratch filled with garbage (as fresh device memory
// is): every block's phases run by every thread in turn (the barriers), launch by launch. Returns how
// many matrices took launch 3 (the cap bound somewhere), so a test can say which paths it covered.
template <class T>
int emulate_adafactor(const dlopt::cpu::Segment<dlopt::AdafactorRule, T>* segments, std::size_t count) {
  namespace cd = dlopt::cuda::detail;
  std::vector<int64_t> first;
  std::vector<cd::AdafactorTensor<T>> tensors;
  const std::size_t bytes = cd::adafactor_layout(segments, count, 0, first, tensors).bytes;
  std::vector<double> memory(bytes / sizeof(double) + 2);  // 16-byte aligned base below
  std::memset(static_cast<void*>(memory.data()), 0xa5, memory.size() * sizeof(double));
  const uintptr_t base = (reinterpret_cast<uintptr_t>(memory.data()) + 15) / 16 * 16;
  const cd::AdafactorLayout layout = cd::adafactor_layout(segments, count, base, first, tensors);
  if (tensors.empty()) return 0;
  cd::write_adafactor_table(layout, first, tensors, reinterpret_cast<unsigned char*>(base));
  const auto* d_first = reinterpret_cast<const int64_t*>(base);
  auto* d_tensors = reinterpret_cast<cd::AdafactorTensor<T>*>(base + layout.tensors_at);
  const std::size_t n = tensors.size();
  const int64_t blocks = first.back();
  auto shared = std::make_unique<cd::AdafactorShared>();
  std::memset(static_cast<void*>(shared.get()), 0xa5, sizeof(cd::AdafactorShared));  // stale
  const auto all_threads = [](const auto& phase) {
    for (int thread = 0; thread < cd::kAdafactorThreads; ++thread) phase(thread);
  };
  for (int64_t b = 0; b < blocks; ++b) cd::adafactor_sums<T>(d_first, d_tensors, n, b, *shared, all_threads);
  for (std::size_t k = 0; k < n; ++k) cd::adafactor_statistics<T>(d_tensors, k, all_threads);
  for (int64_t b = 0; b < blocks; ++b) cd::adafactor_u_squares<T>(d_first, d_tensors, n, b, *shared, all_threads);
  for (std::size_t k = 0; k < n; ++k) cd::adafactor_finish<T>(d_tensors, k);
  for (int64_t b = 0; b < blocks; ++b)
    for (int thread = 0; thread < cd::kAdafactorThreads; ++thread) cd::adafactor_apply<T>(d_first, d_tensors, n, b, thread);
  int bound = 0;
  for (std::size_t k = 0; k < n; ++k) bound += d_tensors[k].u_pass && d_tensors[k].rows.factored;
  return bound;
}

// One Adafactor tensor for the comparisons: its dimensions and host buffers (param, grad, R, C, V).
struct AdafactorShape {
  int64_t rows, batch, cols;  // rows = 0: a vector of `cols`
  bool zero_row;              // one gradient row (or element) of zeros: R = 0, so the cap binds
  int64_t size() const { return (rows > 0 ? rows : 1) * cols; }
};

// Several steps of Adafactor on tensors of every kind in one call — matrices with rows and columns
// off the 64-row blocks, batches whose matrices straddle blocks, vectors, an empty tensor — on the
// CPU (dlopt::step: update_matrix) and through the emulated launches or, with `device`, through
// dlopt::cuda::step on the GPU; every buffer equal bit for bit.
template <class T>
void adafactor_equals_cpu(const dlopt::AdafactorConfig& config, const std::string& label, bool device) {
  using Rule = dlopt::AdafactorRule;
  const std::vector<AdafactorShape> shapes = {
      {130, 1, 70, false}, {150, 3, 33, false}, {128, 2, 17, true}, {0, 1, 1000, false}, {0, 1, 5, true},
      {1, 1, 300, false},  {300, 1, 1, false},  {300, 1, 260, false}, {0, 1, 0, false},   {64, 1, 40, true}};
  const std::size_t n = shapes.size();
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  // [tensor][0 = param, 1 = grad, 2.. = R, C, V] for the CPU (a) and the emulation or device (b).
  std::vector<std::vector<std::vector<T>>> a(n);
  for (std::size_t i = 0; i < n; ++i) {
    const AdafactorShape& s = shapes[i];
    const dlopt::TensorShape shape{s.size(), s.rows, s.batch};
    a[i].resize(5);
    a[i][0].resize(std::size_t(s.size()));
    for (T& x : a[i][0]) x = T(normal(rng));
    a[i][1].resize(a[i][0].size());
    for (int k = 0; k < 3; ++k) a[i][2 + k].assign(std::size_t(dlopt::slot_elements<Rule>(config, k, shape)), T(0));
  }
  auto b = a;
  std::vector<std::vector<std::unique_ptr<dlopt::cuda::Buffer>>> d(n);
  const auto bytes = [](const std::vector<T>& v) { return v.size() * sizeof(T); };
  if (device)
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t k = 0; k < 5; ++k) {
        d[i].push_back(b[i][k].empty() ? nullptr : std::make_unique<dlopt::cuda::Buffer>(bytes(b[i][k]), 0));
        if (d[i][k]) dlopt::cuda::copy(d[i][k]->data(), b[i][k].data(), bytes(b[i][k]));
      }
  std::vector<dlopt::TensorScalars> sa(n), sb(n);
  auto tensor_steps = [&](std::vector<std::vector<std::vector<T>>>& bufs, std::vector<dlopt::TensorScalars>& sc,
                          bool on_device) {
    std::vector<dlopt::TensorStep<Rule, T>> t(n);
    for (std::size_t i = 0; i < n; ++i) {
      const auto at = [&](std::size_t k) -> T* {
        if (bufs[i][k].empty()) return nullptr;
        return on_device ? static_cast<T*>(d[i][k]->data()) : bufs[i][k].data();
      };
      t[i].param = at(0);
      t[i].grad = at(1);
      for (std::size_t k = 0; k < 3; ++k) t[i].slots[k] = at(2 + k);
      t[i].size = shapes[i].size();
      t[i].rows = shapes[i].rows;
      t[i].batch = shapes[i].batch;
      t[i].config = &config;
      t[i].scalars = &sc[i];
    }
    return t;
  };
  int bound = 0;
  const int steps = 6;
  for (int step = 0; step < steps; ++step) {
    for (std::size_t i = 0; i < n; ++i) {
      std::vector<T>& g = a[i][1];
      for (T& x : g) x = T(normal(rng));
      if (shapes[i].zero_row && !g.empty() && step % 2 == 0)  // R (or V) of the row stays 0 at the first step
        for (int64_t j = 0; j < (shapes[i].rows > 0 ? shapes[i].cols : 1); ++j) g[std::size_t(j)] = T(0);
      b[i][1] = g;
      if (device && d[i][1]) dlopt::cuda::copy(d[i][1]->data(), g.data(), bytes(g));
    }
    auto ta = tensor_steps(a, sa, false);
    dlopt::step(ta.data(), n);
    auto tb = tensor_steps(b, sb, device);
    if (device) {
      dlopt::cuda::step(tb.data(), n);
    } else {
      dlopt::detail::check_step(tb.data(), n);
      auto& segments = dlopt::detail::begin_step(tb.data(), n);
      bound += emulate_adafactor(segments.data(), n);
    }
  }
  if (device) {
    dlopt::cuda::synchronize();
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t k = 0; k < 5; ++k)
        if (d[i][k]) dlopt::cuda::copy(b[i][k].data(), d[i][k]->data(), bytes(b[i][k]));
  }
  bool equal = true, moved = true;
  std::string first_difference;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t k = 0; k < 5; ++k)
      if (bytes(a[i][k]) > 0 && std::memcmp(a[i][k].data(), b[i][k].data(), bytes(a[i][k])) != 0) {  // empty: null
        if (equal) first_difference = " (first difference: tensor " + std::to_string(i) + ", buffer " + std::to_string(k) + ")";
        equal = false;
      }
  for (std::size_t i = 0; i < n; ++i) moved = moved && sb[i].step == steps;
  const std::string what = std::string(device ? "device" : "emulated") + " Adafactor equals the CPU bit for bit, " +
                           label + (sizeof(T) == 4 ? " <float>" : " <double>");
  check(equal && moved, what + first_difference);
  if (!device) check(bound > 0 && bound < steps * 7, what + ": both Σ U² paths taken (" + std::to_string(bound) + " bound)");
}

template <class T>
void adafactor_cases(bool device) {
  dlopt::AdafactorConfig plain;
  adafactor_equals_cpu<T>(plain, "defaults", device);
  dlopt::AdafactorConfig other;
  other.lr = 0.05;
  other.eps1 = 1e-3;
  other.weight_decay = 0.1;
  other.maximize = true;
  other.d = 1.5;
  adafactor_equals_cpu<T>(other, "eps1 1e-3, weight decay, maximize", device);
}

}  // namespace

/// Schedule-Free's train / eval switch: the kernel body run for every (block, thread) of the launch
/// schedule_free_move makes equals Optimizer::eval() then train() on the host, bit for bit; with a
/// device, the launch itself too.
template <class T>
void schedule_free_switch() {
  const int64_t n = 3 * dlopt::cuda::kMoveThreads + 17;  // several blocks and a partial one
  std::vector<T> p(static_cast<std::size_t>(n)), g(p.size());
  for (int64_t j = 0; j < n; ++j) p[std::size_t(j)] = T(std::sin(double(j))), g[std::size_t(j)] = T(std::cos(3.0 * double(j)));
  dlopt::ScheduleFreeSGDConfig config;
  config.lr = 0.1;
  config.momentum = 0.8;
  dlopt::ScheduleFreeSGD<T> opt({{p.data(), n}}, config);
  for (int s = 0; s < 3; ++s) opt.step({g.data()});
  const std::vector<T> y = p, z(opt.state(0, 0).template data<T>(), opt.state(0, 0).template data<T>() + n);
  opt.eval();
  const std::vector<T> x = p;
  auto emulate = [&](std::vector<T> q, bool to_train) {
    const T w = T(dlopt::ScheduleFreeSGDRule::mode_weight(config, to_train));
    const int64_t blocks = dlopt::cuda::move_blocks(n), threads = blocks * dlopt::cuda::kMoveThreads;
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t t = 0; t < dlopt::cuda::kMoveThreads; ++t)
        dlopt::cuda::detail::move_elements(b * dlopt::cuda::kMoveThreads + t, threads, n, q.data(), z.data(), w);
    return q;
  };
  check(emulate(y, false) == x && x != y, "emulated eval() launch equals Optimizer::eval()");
  opt.train();
  check(emulate(x, true) == p, "emulated train() launch equals Optimizer::train()");
  if (!dlopt::cuda::is_available()) return;
  const std::size_t bytes = std::size_t(n) * sizeof(T);
  dlopt::cuda::Buffer dp(bytes, 0), dz(bytes, 0);
  dlopt::cuda::copy(dp.data(), y.data(), bytes);
  dlopt::cuda::copy(dz.data(), z.data(), bytes);
  dlopt::cuda::schedule_free_move(static_cast<T*>(dp.data()), static_cast<const T*>(dz.data()), n,
                                  T(dlopt::ScheduleFreeSGDRule::mode_weight(config, false)));
  std::vector<T> back(static_cast<std::size_t>(n));
  dlopt::cuda::copy(back.data(), dp.data(), bytes);
  check(back == x, "device eval() equals the host's");
}

/// The 16-bit switch (bfloat16 / float16 parameters, with and without a master copy): the kernel body
/// run for every (block, thread) of schedule_free_move_16bit's launch equals Optimizer::eval() then
/// train() on the host bit for bit, parameter and master copy; with a device, the launch itself too.
template <class U>
void schedule_free_switch_16bit(bool master_weights) {
  const std::string what = std::string(std::is_same_v<U, dlopt::bfloat16> ? "bfloat16" : "float16") +
                           (master_weights ? ", master weights" : "");
  const int64_t n = 3 * dlopt::cuda::kMoveThreads + 17;
  std::vector<U> p(static_cast<std::size_t>(n)), g(p.size());
  std::vector<float> p32(p.size()), g32(p.size());
  for (int64_t j = 0; j < n; ++j) p32[std::size_t(j)] = float(std::sin(double(j))), g32[std::size_t(j)] = float(std::cos(3.0 * double(j)));
  dlopt::from_float(dlopt::Buffer(p.data()), n, p32.data());
  dlopt::from_float(dlopt::Buffer(g.data()), n, g32.data());
  dlopt::ScheduleFreeAdamWConfig config;
  config.lr = 0.05;
  dlopt::StorageOptions options;
  options.master_weights = master_weights;
  dlopt::ScheduleFreeAdamW<U> opt({{p.data(), n}}, config, options);
  for (int s = 0; s < 3; ++s) opt.step({g.data()});
  const auto bits = [](const std::vector<U>& v) {
    std::vector<uint16_t> b;
    for (const U& x : v) b.push_back(x.bits);
    return b;
  };
  const auto master = [&] {
    const auto state = opt.state_dict();
    return std::vector<float>(state.tensors[0].master.begin(), state.tensors[0].master.end());
  };
  const float* zs = opt.state(0, 0).template data<float>();
  const std::vector<float> z(zs, zs + n);
  const std::vector<U> y = p;
  const std::vector<float> master_y = master();
  opt.eval();
  const std::vector<U> x = p;
  const std::vector<float> master_x = master();
  auto emulate = [&](std::vector<U> q, std::vector<float> m, bool to_train) {
    const float w = float(dlopt::ScheduleFreeAdamWRule::mode_weight(config, to_train));
    const int64_t blocks = dlopt::cuda::move_blocks(n), threads = blocks * dlopt::cuda::kMoveThreads;
    for (int64_t b = 0; b < blocks; ++b)
      for (int64_t t = 0; t < dlopt::cuda::kMoveThreads; ++t)
        dlopt::cuda::detail::move_16bit_elements(b * dlopt::cuda::kMoveThreads + t, threads, n, dlopt::Buffer(q.data()),
                                                 m.empty() ? nullptr : m.data(), z.data(), w);
    return std::make_pair(bits(q), m);
  };
  check(master_weights == (master_y.size() == std::size_t(n)), what + ": a master copy exactly when asked for");
  check(emulate(y, master_y, false) == std::make_pair(bits(x), master_x) && bits(x) != bits(y),
        what + ": emulated eval() launch equals Optimizer::eval()");
  opt.train();
  check(emulate(x, master_x, true) == std::make_pair(bits(p), master()), what + ": emulated train() launch equals Optimizer::train()");
  if (!dlopt::cuda::is_available()) return;
  const std::size_t bytes = std::size_t(n) * sizeof(U), fbytes = std::size_t(n) * sizeof(float);
  dlopt::cuda::Buffer dp(bytes, 0), dz(fbytes, 0), dm(fbytes, 0);
  dlopt::cuda::copy(dp.data(), y.data(), bytes);
  dlopt::cuda::copy(dz.data(), z.data(), fbytes);
  if (master_weights) dlopt::cuda::copy(dm.data(), master_y.data(), fbytes);
  dlopt::cuda::schedule_free_move_16bit(dlopt::Buffer(static_cast<U*>(dp.data())),
                                        master_weights ? static_cast<float*>(dm.data()) : nullptr,
                                        static_cast<const float*>(dz.data()), n,
                                        float(dlopt::ScheduleFreeAdamWRule::mode_weight(config, false)));
  std::vector<U> back(static_cast<std::size_t>(n));
  std::vector<float> master_dev(master_weights ? std::size_t(n) : 0);
  dlopt::cuda::copy(back.data(), dp.data(), bytes);
  if (master_weights) dlopt::cuda::copy(master_dev.data(), dm.data(), fbytes);
  check(bits(back) == bits(x) && master_dev == master_x, what + ": device eval() equals the host's");
}

/// With a device: make_device_optimizer equals make_optimizer bit for bit over 30 steps of two
/// tensors (one unaligned size, several chunks), in the storage `options` asks for, with
/// Schedule-Free's eval() / train() between steps; a step after eval() changes nothing; the device
/// optimizer's checkpoint is the host's (loaded into a host optimizer, it continues identically, and
/// the host's checkpoint loaded into a device optimizer does too).
template <class T>
void device_optimizer_equals_host(const std::string& name, dlopt::StateDType dtype) {
  if (!dlopt::cuda::is_available()) return;
  const std::string what = name + (sizeof(T) == 4 ? "<float>" : "<double>") + ", state_dtype " + dlopt::state_dtype_name(dtype);
  const int64_t sizes[] = {4097 + 256 * 3, 33};
  // Adafactor: the first parameter a 5 × 973 matrix (factored row_var / col_var), the second a vector.
  const int64_t rows[] = {name == "Adafactor" ? 5 : 0, 0};
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal;
  dlopt::StorageOptions o;
  o.state_dtype = dtype;
  o.seed = 11;
  const std::map<std::string, double> h = {{"lr", 0.01}};
  std::vector<std::vector<T>> hp(2), g(2);
  std::vector<std::unique_ptr<dlopt::cuda::Buffer>> dp, dg;
  std::vector<dlopt::ParamView<T>> host_views, device_views;
  for (std::size_t i = 0; i < 2; ++i) {
    hp[i].resize(std::size_t(sizes[i]));
    g[i].resize(hp[i].size());
    for (T& x : hp[i]) x = T(normal(rng));
    dp.push_back(std::make_unique<dlopt::cuda::Buffer>(hp[i].size() * sizeof(T), 0));
    dg.push_back(std::make_unique<dlopt::cuda::Buffer>(hp[i].size() * sizeof(T), 0));
    dlopt::cuda::copy(dp[i]->data(), hp[i].data(), hp[i].size() * sizeof(T));
    host_views.push_back({hp[i].data(), sizes[i], rows[i]});
    device_views.push_back({static_cast<T*>(dp[i]->data()), sizes[i], rows[i]});
  }
  auto host = dlopt::make_optimizer<T>(name, host_views, h, o);
  auto device = dlopt::make_device_optimizer<T>(name, device_views, h, nullptr, o);
  auto download = [&](std::size_t i) {
    std::vector<T> back(hp[i].size());
    dlopt::cuda::copy(back.data(), dp[i]->data(), back.size() * sizeof(T));
    return back;
  };
  auto equal = [&] { return download(0) == hp[0] && download(1) == hp[1]; };
  std::unique_ptr<dlopt::AnyOptimizer<T>> reloaded;  // a host optimizer loaded from the device's checkpoint
  auto steps = [&](int count) {
    for (int s = 0; s < count; ++s) {
      for (std::size_t i = 0; i < 2; ++i) {
        for (T& x : g[i]) x = T(normal(rng));
        dlopt::cuda::copy(dg[i]->data(), g[i].data(), g[i].size() * sizeof(T));
      }
      host->step({g[0].data(), g[1].data()});
      if (reloaded) reloaded->step({g[0].data(), g[1].data()});
      device->step({static_cast<const T*>(dg[0]->data()), static_cast<const T*>(dg[1]->data())});
      if (s % 10 == 9) {
        host->eval(), device->eval();
        host->train(), device->train();
      }
    }
  };
  steps(30);
  host->eval(), device->eval();
  check(equal() && !device->train_mode(), what + ": the device optimizer equals the host's bit for bit (eval mode)");
  if (!host->train_mode()) {  // Schedule-Free
    const std::vector<T> before = download(0);
    check(throws<dlopt::InvalidArgument>([&] { device->step({static_cast<const T*>(dg[0]->data()), nullptr}); },
                                         "not in train mode") && download(0) == before,
          what + ": a device step after eval() throws and changes nothing");
  }

  dlopt::SaveOptions save;
  save.names = {"a", "b"};
  const std::string path = "test_cuda_device_optimizer.dlopt";
  device->save(path, save);
  std::vector<std::vector<T>> hq = {std::vector<T>(hp[0].size()), std::vector<T>(hp[1].size())};
  reloaded = dlopt::make_optimizer<T>(name, {{hq[0].data(), sizes[0], rows[0]}, {hq[1].data(), sizes[1], rows[1]}}, h, o);
  reloaded->load(path, save.names);
  check(hq == hp && reloaded->train_mode() == host->train_mode(), what + ": the device checkpoint loads on the host");
  host->save(path, save);
  auto device2 = dlopt::make_device_optimizer<T>(name, device_views, h, nullptr, o);
  for (std::size_t i = 0; i < 2; ++i) dlopt::cuda::fill(static_cast<T*>(dp[i]->data()), sizes[i], T(0));
  device2->load(path, save.names);
  check(equal() && device2->train_mode() == host->train_mode(), what + ": the host checkpoint loads on the device");
  device = std::move(device2);
  host->train(), device->train(), reloaded->train();
  steps(5);
  check(equal() && hq == hp, what + ": after the checkpoints, the three optimizers continue as one");
  std::remove(path.c_str());
}

int main() {
  checks_before_the_device();
  schedule_free_switch<float>();
  schedule_free_switch<double>();
  for (bool master : {false, true}) {
    schedule_free_switch_16bit<dlopt::bfloat16>(master);
    schedule_free_switch_16bit<dlopt::float16>(master);
  }
#define DLOPT_EMULATE_RULE(Rule)                     \
  emulated_launch_equals_cpu<dlopt::Rule, float>();   \
  emulated_launch_equals_cpu<dlopt::Rule, double>();
  DLOPT_FOR_EACH_RULE(DLOPT_EMULATE_RULE)
#undef DLOPT_EMULATE_RULE
#define DLOPT_EMULATE_FORMATS(Rule)           \
  storage_formats<dlopt::Rule, float>(false); \
  storage_formats<dlopt::Rule, double>(false);
  DLOPT_FOR_EACH_RULE(DLOPT_EMULATE_FORMATS)
#undef DLOPT_EMULATE_FORMATS
  adafactor_cases<float>(false);
  adafactor_cases<double>(false);
  for (const char* name : {"ScheduleFreeSGD", "ScheduleFreeAdamW", "Adam", "LAMB", "Adafactor"})
    for (dlopt::StateDType dtype : {dlopt::StateDType::Default, dlopt::StateDType::BFloat16, dlopt::StateDType::Int8}) {
      device_optimizer_equals_host<float>(name, dtype);
      device_optimizer_equals_host<double>(name, dtype);
    }
  if (!dlopt::cuda::is_available()) {
    std::printf("no CUDA device (or a build without CUDA): device comparisons skipped\n");
  } else {
    std::printf("CUDA device: %s\n", dlopt::cuda::device_name(0).c_str());
#define DLOPT_TEST_RULE(Rule)                     \
  if constexpr (!dlopt::Rule::matrix) {           \
    device_equals_host<dlopt::Rule, float>();     \
    device_equals_host<dlopt::Rule, double>();    \
    storage_formats<dlopt::Rule, float>(true);    \
    storage_formats<dlopt::Rule, double>(true);   \
  }
    DLOPT_FOR_EACH_RULE(DLOPT_TEST_RULE)
#undef DLOPT_TEST_RULE
    adafactor_cases<float>(true);
    adafactor_cases<double>(true);
  }
  return summary();
}
