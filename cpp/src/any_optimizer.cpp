#include "dlopt/optim/any_optimizer.hpp"

#include <algorithm>
#include <cctype>
#include <functional>

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

template <class Rule, class T>
class Erased final : public AnyOptimizer<T> {
 public:
  Erased(std::vector<ParamView<T>> params, const std::map<std::string, double>& hyperparameters)
      : opt_(std::move(params), configured(hyperparameters)) {}

  void step(const std::vector<const T*>& grads) override { opt_.step(grads); }
  void set(const std::string& key, double value) override {
    typename Rule::Config c = opt_.config();
    if (!access(c, key, nullptr, &value)) unknown(key);
    c.validate();
    opt_.config() = c;
  }
  double get(const std::string& key) const override {
    typename Rule::Config c = opt_.config();
    double value = 0;
    if (!access(c, key, &value, nullptr)) unknown(key);
    return value;
  }
  const char* name() const override { return Rule::name; }

 private:
  static typename Rule::Config configured(const std::map<std::string, double>& hyperparameters) {
    typename Rule::Config c;
    for (const auto& [key, value] : hyperparameters)
      if (!access(c, key, nullptr, &value)) unknown(key);
    return c;  // validated by the Optimizer constructor
  }
  [[noreturn]] static void unknown(const std::string& key) {
    throw InvalidArgument(std::string(Rule::name) + " has no hyperparameter '" + key + "'");
  }
  Optimizer<Rule, T> opt_;
};

template <class T>
using Factory = std::function<std::unique_ptr<AnyOptimizer<T>>(
    std::vector<ParamView<T>>, const std::map<std::string, double>&)>;

template <class T>
const std::map<std::string, Factory<T>>& factories() {
#define DLOPT_FACTORY(Rule)                                                              \
  {lower(Rule::name), [](std::vector<ParamView<T>> p, const std::map<std::string, double>& h) { \
     return std::unique_ptr<AnyOptimizer<T>>(new Erased<Rule, T>(std::move(p), h));      \
   }},
  static const std::map<std::string, Factory<T>> table = {DLOPT_FOR_EACH_RULE(DLOPT_FACTORY)};
#undef DLOPT_FACTORY
  return table;
}

}  // namespace

template <class T>
std::unique_ptr<AnyOptimizer<T>> make_optimizer(const std::string& name,
                                                std::vector<ParamView<T>> params,
                                                const std::map<std::string, double>& hyperparameters) {
  const auto& table = factories<T>();
  auto it = table.find(lower(name));
  if (it == table.end()) {
    std::string known;
    for (const std::string& n : optimizer_names()) known += (known.empty() ? "" : ", ") + n;
    throw InvalidArgument("unknown optimizer '" + name + "' (known: " + known + ")");
  }
  return it->second(std::move(params), hyperparameters);
}

std::vector<std::string> optimizer_names() {
#define DLOPT_NAME(Rule) Rule::name,
  return {DLOPT_FOR_EACH_RULE(DLOPT_NAME)};
#undef DLOPT_NAME
}

template std::unique_ptr<AnyOptimizer<float>> make_optimizer<float>(
    const std::string&, std::vector<ParamView<float>>, const std::map<std::string, double>&);
template std::unique_ptr<AnyOptimizer<double>> make_optimizer<double>(
    const std::string&, std::vector<ParamView<double>>, const std::map<std::string, double>&);

}  // namespace dlopt
