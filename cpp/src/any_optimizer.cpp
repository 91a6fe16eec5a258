#include "dlopt/optim/any_optimizer.hpp"

#include <algorithm>
#include <cctype>
#include <functional>

#include "dlopt/cuda/memory.hpp"
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

/// The device optimizer: state in device memory (allocated and initialised on a tensor's first
/// step, on the stream), steps by dlopt::cuda::step.
template <class Rule, class T>
class DeviceErased final : public Configurable<Rule, T> {
 public:
  DeviceErased(std::vector<ParamView<T>> params, const std::map<std::string, double>& hyperparameters,
               void* stream)
      : params_(std::move(params)), config_(this->configured(hyperparameters)), scalars_(params_.size()),
        state_(params_.size()), stream_(stream) {
    config_.validate();
  }
  void step(const std::vector<const T*>& grads) override {
    detail::collect_steps<Rule>(
        params_, grads, config_, StorageOptions{}, scalars_,
        [this](std::size_t i, std::size_t k) { return slot(i, k); },
        [](std::size_t) { return static_cast<float*>(nullptr); }, work_);
    cuda::step(work_.data(), work_.size(), stream_);
  }
  void train() override { set_mode(true); }
  void eval() override { set_mode(false); }
  bool train_mode() const override { return train_mode_; }
  void save(const std::string&, const SaveOptions&) const override { unsupported(); }
  std::optional<SchedulerState> load(const std::string&, const std::vector<std::string>&) override { unsupported(); }

 private:
  typename Rule::Config& config() override { return config_; }
  void set_mode(bool train) {
    if constexpr (Rule::has_modes) {
      if (train == train_mode_) return;
      throw cuda::modes_cpu_only(Rule::name);
    }
  }
  [[noreturn]] static void unsupported() {
    throw InvalidArgument(std::string(Rule::name) + " on the device: save / load of device state from C++ is not supported");
  }
  T* slot(std::size_t i, std::size_t k) {
    auto& buf = state_[i][k];
    if (!buf && params_[i].size > 0 && Rule::uses_slot(config_, int(k))) {
      buf = std::make_unique<cuda::Buffer>(std::size_t(params_[i].size) * sizeof(T), cuda::current_device());
      cuda::fill(static_cast<T*>(buf->data()), params_[i].size, T(Rule::slot_init(config_, int(k))), stream_);
    }
    return buf ? static_cast<T*>(buf->data()) : nullptr;
  }

  std::vector<ParamView<T>> params_;
  typename Rule::Config config_;
  std::vector<TensorScalars> scalars_;
  std::vector<std::array<std::unique_ptr<cuda::Buffer>, num_slots<Rule>>> state_;
  void* stream_;
  std::vector<TensorStep<Rule, T>> work_;
  bool train_mode_ = true;
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
                                                       void* stream) {
  make_optimizer<T>(name, {}, hyperparameters, {});  // the same name and hyperparameter checks
  cuda::require_step(name);
#define DLOPT_DEVICE(Rule)                                                                  \
  if (lower(name) == lower(Rule::name))                                                     \
    return std::unique_ptr<AnyOptimizer<T>>(new DeviceErased<Rule, T>(std::move(params), hyperparameters, stream));
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

void cuda::require_host_modes(const std::string& name) {
  const std::string n = lower(name);
#define DLOPT_REQUIRE_HOST_MODES(Rule) \
  if (n == lower(Rule::name) && Rule::has_modes) throw modes_cpu_only(Rule::name);
  DLOPT_FOR_EACH_RULE(DLOPT_REQUIRE_HOST_MODES)
#undef DLOPT_REQUIRE_HOST_MODES
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
    const std::string&, std::vector<ParamView<float>>, const std::map<std::string, double>&, void*);
template std::unique_ptr<AnyOptimizer<double>> make_device_optimizer<double>(
    const std::string&, std::vector<ParamView<double>>, const std::map<std::string, double>&, void*);

}  // namespace dlopt
