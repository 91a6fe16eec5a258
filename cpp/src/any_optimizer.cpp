#include "dlopt/optim/any_optimizer.hpp"

#include <algorithm>
#include <cctype>
#include <functional>

#include "dlopt/cuda/memory.hpp"
#include "dlopt/cuda/schedule_free.hpp"
#include "dlopt/cuda/step.hpp"
#include "dlopt/cuda/support.hpp"

namespace dlopt {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

/// Reads or writes the Config field `key` as a double; false if there is no such field.
template <class Config>
bool access(Config& c, const std::string& key, double* read, const double* write) {
  bool found = false;
  c.visit([&](const char* field_name, auto& field) {
    if (key != field_name) return;
    found = true;
    if (write) field = static_cast<std::decay_t<decltype(field)>>(*write);
    if (read) *read = double(field);
  });
  return found;
}

/// set / get / name over a Rule's Config, shared by the host and the device optimizers.
template <class Rule, class T>
class Configurable : public AnyOptimizer<T> {
 public:
  void set(const std::string& key, double value) override {
    typename Rule::Config c = config();
    if (!access(c, key, nullptr, &value)) unknown(key);
    c.validate();
    config() = c;
  }
  double get(const std::string& key) const override {
    typename Rule::Config c = const_cast<Configurable*>(this)->config();
    double value = 0;
    if (!access(c, key, &value, nullptr)) unknown(key);
    return value;
  }
  const char* name() const override { return Rule::name; }

 protected:
  virtual typename Rule::Config& config() = 0;
  static typename Rule::Config configured(const std::map<std::string, double>& hyperparameters) {
    typename Rule::Config c;
    for (const auto& [key, value] : hyperparameters)
      if (!access(c, key, nullptr, &value)) unknown(key);
    return c;  // validated by the optimizer's constructor
  }
  [[noreturn]] static void unknown(const std::string& key) {
    throw InvalidArgument(std::string(Rule::name) + " has no hyperparameter '" + key + "'");
  }
};

template <class Rule, class T>
class Erased final : public Configurable<Rule, T> {
 public:
  Erased(std::vector<ParamView<T>> params, const std::map<std::string, double>& hyperparameters,
         const StorageOptions& options)
      : opt_(std::move(params), this->configured(hyperparameters), options) {}
  void step(const std::vector<const T*>& grads) override { opt_.step(grads); }
  void train() override { opt_.train(); }
  void eval() override { opt_.eval(); }
  bool train_mode() const override { return opt_.train_mode(); }
  void save(const std::string& path, const SaveOptions& options) const override { dlopt::save(path, opt_, options); }
  std::optional<SchedulerState> load(const std::string& path, const std::vector<std::string>& names) override {
    return dlopt::load(path, opt_, names);
  }

 private:
  typename Rule::Config& config() override { return opt_.config(); }
  Optimizer<Rule, T> opt_;
};

/// One state slot in device memory, in the storage slot_storage gives (8-bit codes with their block
/// scales, also on the device).
struct DeviceSlot {
  Storage storage = Storage::Float32;
  std::unique_ptr<cuda::Buffer> bytes, scales;

  /// The slot as cuda::step takes it (null before its tensor's first step).
  Buffer view() const {
    if (!bytes) return nullptr;
    return {bytes->data(), storage, scales ? static_cast<float*>(scales->data()) : nullptr};
  }
  /// A device copy of the host buffer `b` (its stored form, unconverted).
  static DeviceSlot upload(const StateBuffer& b) {
    DeviceSlot d;
    d.storage = b.storage;
    if (b.empty()) return d;
    d.bytes = std::make_unique<cuda::Buffer>(b.bytes.size(), cuda::current_device());
    cuda::copy(d.bytes->data(), b.bytes.data(), b.bytes.size());
    if (!b.scales.empty()) {
      d.scales = std::make_unique<cuda::Buffer>(b.scales.size() * sizeof(float), cuda::current_device());
      cuda::copy(d.scales->data(), b.scales.data(), b.scales.size() * sizeof(float));
    }
    return d;
  }
  /// The host copy (the caller has waited for the steps that wrote it).
  StateBuffer download() const {
    StateBuffer b;
    b.storage = storage;
    if (!bytes) return b;
    b.bytes.resize(bytes->bytes());
    cuda::copy(b.bytes.data(), bytes->data(), b.bytes.size());
    if (scales) {
      b.scales.resize(scales->bytes() / sizeof(float));
      cuda::copy(b.scales.data(), scales->data(), scales->bytes());
    }
    return b;
  }
};

/// The device optimizer: state in device memory, in the formats `options` asks for (allocated with
/// its initial values on a tensor's first step), steps by dlopt::cuda::step. Everything else is the
/// host Optimizer's: the train / eval switch (the rule's `move` on the device), state_dict (its
/// stored form) and checkpoints (through a host Optimizer over host copies of the parameters, so the
/// file is the one the CPU writes).
template <class Rule, class T>
class DeviceErased final : public Configurable<Rule, T> {
 public:
  DeviceErased(std::vector<ParamView<T>> params, const std::map<std::string, double>& hyperparameters,
               void* stream, const StorageOptions& options)
      : params_(std::move(params)), config_(this->configured(hyperparameters)), options_(options),
        scalars_(params_.size()), state_(params_.size()), stream_(stream) {
    config_.validate();
    detail::check_options<T>(options_);
  }
  void step(const std::vector<const T*>& grads) override {
    if (!train_mode_) throw detail::not_in_train_mode(Rule::name);
    detail::collect_steps<Rule>(
        params_, grads, config_, options_, scalars_, [this](std::size_t i, std::size_t k) { return slot(i, k); },
        [](std::size_t) { return static_cast<float*>(nullptr); }, work_);
    cuda::step(work_.data(), work_.size(), stream_);
  }
  void train() override { set_mode(true); }
  void eval() override { set_mode(false); }
  bool train_mode() const override { return train_mode_; }
  void save(const std::string& path, const SaveOptions& options) const override {
    std::vector<std::vector<T>> host;
    const Optimizer<Rule, T> mirror = host_mirror(host);
    dlopt::save(path, mirror, options);
  }
  std::optional<SchedulerState> load(const std::string& path, const std::vector<std::string>& names) override {
    std::vector<std::vector<T>> host;
    Optimizer<Rule, T> mirror = host_mirror(host);
    std::optional<SchedulerState> schedule = dlopt::load(path, mirror, names);  // checked in full first
    load_state_dict(mirror.state_dict());
    for (std::size_t i = 0; i < params_.size(); ++i)
      cuda::copy(params_[i].data, host[i].data(), host[i].size() * sizeof(T));
    after_uploads();
    return schedule;
  }

 private:
  typename Rule::Config& config() override { return config_; }

  /// The whole state copied to the host, as Optimizer::state_dict gives it.
  OptimizerState<Rule> state_dict() const {
    cuda::stream_synchronize(stream_);
    OptimizerState<Rule> s{config_, options_, std::vector<TensorState<Rule>>(params_.size()), train_mode_};
    for (std::size_t i = 0; i < params_.size(); ++i) {
      s.tensors[i].scalars = scalars_[i];
      for (std::size_t k = 0; k < num_slots<Rule>; ++k) s.tensors[i].slots[k] = state_[i][k].download();
    }
    return s;
  }
  /// Adopts `s` after Optimizer's checks (detail::check_state); the uploads are made before anything
  /// changes, so a failed one leaves the optimizer as it was.
  void load_state_dict(const OptimizerState<Rule>& s) {
    std::vector<TensorShape> shapes;
    for (const ParamView<T>& p : params_) shapes.push_back(p.shape());
    detail::check_state(s, shapes, storage_of<T>);
    cuda::stream_synchronize(stream_);  // no step in flight uses the buffers replaced
    std::vector<std::array<DeviceSlot, num_slots<Rule>>> state(params_.size());
    for (std::size_t i = 0; i < params_.size(); ++i)
      for (std::size_t k = 0; k < num_slots<Rule>; ++k) state[i][k] = DeviceSlot::upload(s.tensors[i].slots[k]);
    config_ = s.config;
    options_ = s.options;
    train_mode_ = s.train_mode;
    for (std::size_t i = 0; i < params_.size(); ++i) scalars_[i] = s.tensors[i].scalars;
    state_ = std::move(state);
    after_uploads();
  }
  /// The stream's next work waits for the copies made on the legacy default stream (cuda::copy
  /// may return before a copy from pageable memory has landed).
  void after_uploads() { cuda::stream_wait(nullptr, stream_); }
  /// A host Optimizer holding this one's state, over host copies of the parameters (in `host`).
  Optimizer<Rule, T> host_mirror(std::vector<std::vector<T>>& host) const {
    cuda::stream_synchronize(stream_);
    std::vector<ParamView<T>> views;
    host.resize(params_.size());
    for (std::size_t i = 0; i < params_.size(); ++i) {
      host[i].resize(std::size_t(params_[i].size));
      cuda::copy(host[i].data(), params_[i].data, host[i].size() * sizeof(T));
      views.push_back({host[i].data(), params_[i].size, params_[i].rows, params_[i].batch});
    }
    Optimizer<Rule, T> mirror(std::move(views), config_, options_);
    mirror.load_state_dict(state_dict());
    return mirror;
  }
  /// Schedule-Free's switch, as Optimizer::set_mode: p <- lerp(p, z, w) for each parameter that
  /// has stepped (z, a Wide slot, is stored as T), on the stream.
  void set_mode(bool train) {
    if constexpr (Rule::has_modes) {
      if (train == train_mode_) return;
      config_.validate();  // the weight comes from beta
      const T w = T(Rule::mode_weight(config_, train));
      for (std::size_t i = 0; i < params_.size(); ++i) {
        const DeviceSlot& z = state_[i][0];
        if (!z.bytes) continue;  // not stepped yet: y = x
        cuda::schedule_free_move(params_[i].data, static_cast<const T*>(z.bytes->data()), params_[i].size, w, stream_);
      }
      train_mode_ = train;
    }
  }
  Buffer slot(std::size_t i, std::size_t k) {
    DeviceSlot& d = state_[i][k];
    const int64_t n = slot_elements<Rule>(config_, int(k), params_[i].shape());
    if (n > 0 && !d.bytes) {
      d = DeviceSlot::upload(new_slot<Rule>(config_, int(k), n, options_.state_dtype, storage_of<T>));
      after_uploads();
    }
    return n > 0 ? d.view() : Buffer();
  }

  std::vector<ParamView<T>> params_;
  typename Rule::Config config_;
  StorageOptions options_;
  std::vector<TensorScalars> scalars_;
  std::vector<std::array<DeviceSlot, num_slots<Rule>>> state_;
  void* stream_;
  std::vector<TensorStep<Rule, T>> work_;
  bool train_mode_ = true;  ///< as Optimizer's
};

template <class T>
using Factory = std::function<std::unique_ptr<AnyOptimizer<T>>(
    std::vector<ParamView<T>>, const std::map<std::string, double>&, const StorageOptions&)>;

template <class T>
const std::map<std::string, Factory<T>>& factories() {
#define DLOPT_FACTORY(Rule)                                                              \
  {lower(Rule::name), [](std::vector<ParamView<T>> p, const std::map<std::string, double>& h, \
                         const StorageOptions& o) {                                         \
     return std::unique_ptr<AnyOptimizer<T>>(new Erased<Rule, T>(std::move(p), h, o));    \
   }},
  static const std::map<std::string, Factory<T>> table = {DLOPT_FOR_EACH_RULE(DLOPT_FACTORY)};
#undef DLOPT_FACTORY
  return table;
}

}  // namespace

template <class T>
std::unique_ptr<AnyOptimizer<T>> make_optimizer(const std::string& name,
                                                std::vector<ParamView<T>> params,
                                                const std::map<std::string, double>& hyperparameters,
                                                const StorageOptions& options) {
  const auto& table = factories<T>();
  auto it = table.find(lower(name));
  if (it == table.end()) {
    std::string known;
    for (const std::string& n : optimizer_names()) known += (known.empty() ? "" : ", ") + n;
    throw InvalidArgument("unknown optimizer '" + name + "' (known: " + known + ")");
  }
  return it->second(std::move(params), hyperparameters, options);
}

template <class T>
std::unique_ptr<AnyOptimizer<T>> make_device_optimizer(const std::string& name,
                                                       std::vector<ParamView<T>> params,
                                                       const std::map<std::string, double>& hyperparameters,
                                                       void* stream, const StorageOptions& options) {
  make_optimizer<T>(name, {}, hyperparameters, options);  // the same name, hyperparameter and option checks
  cuda::require_step(name);
#define DLOPT_DEVICE(Rule)                                                                  \
  if (lower(name) == lower(Rule::name))                                                     \
    return std::unique_ptr<AnyOptimizer<T>>(new DeviceErased<Rule, T>(std::move(params), hyperparameters, stream, options));
  DLOPT_FOR_EACH_RULE(DLOPT_DEVICE)
#undef DLOPT_DEVICE
  return nullptr;  // unreachable: make_optimizer knows every name
}

void cuda::require_step(const std::string& name) {
  const std::string n = lower(name);
  if (n == "lbfgs") throw cpu_only("LBFGS");  // not a rule (optim/lbfgs.hpp): a host line search
#define DLOPT_REQUIRE_STEP(Rule) \
  if (n == lower(Rule::name) && !has_step<Rule>) throw cpu_only(Rule::name);
  DLOPT_FOR_EACH_RULE(DLOPT_REQUIRE_STEP)
#undef DLOPT_REQUIRE_STEP
}

std::vector<std::string> optimizer_names() {
#define DLOPT_NAME(Rule) Rule::name,
  return {DLOPT_FOR_EACH_RULE(DLOPT_NAME)};
#undef DLOPT_NAME
}

#define DLOPT_MAKE_OPTIMIZER(T)                                                         \
  template std::unique_ptr<AnyOptimizer<T>> make_optimizer<T>(                         \
      const std::string&, std::vector<ParamView<T>>, const std::map<std::string, double>&, \
      const StorageOptions&);
DLOPT_MAKE_OPTIMIZER(float)
DLOPT_MAKE_OPTIMIZER(double)
DLOPT_MAKE_OPTIMIZER(bfloat16)
DLOPT_MAKE_OPTIMIZER(float16)
#undef DLOPT_MAKE_OPTIMIZER
template std::unique_ptr<AnyOptimizer<float>> make_device_optimizer<float>(
    const std::string&, std::vector<ParamView<float>>, const std::map<std::string, double>&, void*, const StorageOptions&);
template std::unique_ptr<AnyOptimizer<double>> make_device_optimizer<double>(
    const std::string&, std::vector<ParamView<double>>, const std::map<std::string, double>&, void*, const StorageOptions&);

}  // namespace dlopt
