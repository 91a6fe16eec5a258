// Python face of the optimizer core: one generic binding per rule in the registry.
//
// _core.step(name, groups) takes, per parameter group, (config: dict, entries: list of
// (index, param, grad, state: dict)). It checks everything first (types, dtypes, shapes,
// contiguity, aliasing, hyperparameters), then creates missing state, then runs one fused
// multi-tensor pass with the GIL released, then writes the step counters back into `state`.
// A failure in the checks leaves parameters and state untouched.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <string>
#include <vector>

#include "arrays.hpp"
#include "dlopt/core/step.hpp"
#include "dlopt/optim/registry.hpp"

namespace dlopt::py_bindings {
namespace {

// ---- hyperparameters: dict <-> Config through Config::visit ----------------------------------

template <class Config>
Config config_from_dict(const py::dict& d, const std::string& where) {
  Config c;
  c.visit([&](const char* key, auto& field) {
    using Field = std::decay_t<decltype(field)>;
    if (!d.contains(key)) return;
    py::handle v = d[key];
    if constexpr (std::is_same_v<Field, bool>) {
      const bool numpy_bool = std::string(Py_TYPE(v.ptr())->tp_name).rfind("numpy.bool", 0) == 0;
      if (!py::isinstance<py::bool_>(v) && !numpy_bool)
        throw py::type_error(where + key + ": expected a bool, got " +
                             py::repr(v).cast<std::string>());
      field = v.cast<bool>();
    } else {
      if (py::isinstance<py::bool_>(v) || !PyNumber_Check(v.ptr()) || py::isinstance<py::str>(v))
        throw py::type_error(where + key + ": expected a number, got " +
                             py::repr(v).cast<std::string>());
      field = v.cast<double>();
    }
  });
  try {
    c.validate();
  } catch (const InvalidArgument& e) {
    throw py::value_error(where + e.what());
  }
  return c;
}

template <class Config>
py::dict config_to_dict(Config c) {
  py::dict d;
  c.visit([&](const char* key, auto& field) { d[key] = field; });
  return d;
}

// ---- one step ---------------------------------------------------------------------------------

template <class Rule>
struct StepCall {
  using Config = typename Rule::Config;
  std::vector<Config> configs;             // one per group; stable: reserved up front
  std::vector<TensorScalars> scalars;      // one per entry
  std::vector<py::dict> states;            // one per entry
  std::vector<TensorStep<Rule, float>> f32;
  std::vector<TensorStep<Rule, double>> f64;

  template <class T>
  std::vector<TensorStep<Rule, T>>& steps() {
    if constexpr (std::is_same_v<T, float>) return f32; else return f64;
  }
};

struct Entry {
  py::array param, grad;
  py::dict state;
  std::string name;  // "params[i]"
  std::size_t group;
};

template <class T, class Rule>
void add_tensor(StepCall<Rule>& call, Entry& e, std::size_t entry_index) {
  const auto& config = call.configs[e.group];
  TensorStep<Rule, T> t;
  t.param = static_cast<T*>(e.param.mutable_data());
  t.grad = static_cast<const T*>(e.grad.data());
  t.size = e.param.size();
  t.config = &config;
  t.scalars = &call.scalars[entry_index];
  for (std::size_t k = 0; k < num_slots<Rule>; ++k) {
    if (!Rule::uses_slot(config, int(k))) continue;
    const char* key = Rule::slots[k];
    if (!e.state.contains(key)) {  // lazy state: created only once all checks passed
      py::array_t<T> fresh(std::vector<py::ssize_t>(e.param.shape(), e.param.shape() + e.param.ndim()));
      std::fill(fresh.mutable_data(), fresh.mutable_data() + fresh.size(),
                T(Rule::slot_init(config, int(k))));
      e.state[key] = fresh;
    }
    py::object buffer = e.state[key];
    t.slots[k] = static_cast<T*>(py::reinterpret_borrow<py::array>(buffer).mutable_data());
  }
  call.template steps<T>().push_back(t);
}

template <class Rule>
void step(const py::list& groups) {
  StepCall<Rule> call;
  call.configs.reserve(groups.size());
  std::vector<Entry> entries;
  std::vector<Range> written, read;

  // 1. Check every argument; nothing is modified in this phase.
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    auto group = groups[gi].cast<py::tuple>();
    const std::string where = "param_groups[" + std::to_string(gi) + "]: ";
    call.configs.push_back(config_from_dict<typename Rule::Config>(group[0].cast<py::dict>(), where));
    for (py::handle item : group[1].cast<py::list>()) {
      auto entry = item.cast<py::tuple>();
      const std::string index = std::to_string(entry[0].cast<long>());
      Entry e;
      e.name = "params[" + index + "]";
      e.param = checked_array(entry[1], e.name, /*writeable=*/true);
      e.grad = checked_like(entry[2], e.param, "grads[" + index + "]", e.name, false);
      e.state = entry[3].cast<py::dict>();
      e.group = gi;
      written.push_back(range_of(e.param, e.name));
      read.push_back(range_of(e.grad, "grads[" + index + "]"));
      for (const char* key : Rule::slots) {
        if (!e.state.contains(key)) continue;
        std::string what = "state[" + index + "]['" + key + "']";
        py::array s = checked_like(e.state[key], e.param, what, e.name, true);
        written.push_back(range_of(s, what));
      }
      TensorScalars sc;
      if (e.state.contains("step")) sc.step = e.state["step"].cast<int64_t>();
      if (Rule::tracks_mu_product && e.state.contains("mu_product"))
        sc.mu_product = e.state["mu_product"].cast<double>();
      call.scalars.push_back(sc);
      entries.push_back(std::move(e));
    }
  }
  require_disjoint(std::move(written), read);

  // 2. Create missing state and collect raw buffers.
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (dtype_of(entries[i].param) == DType::Float32) add_tensor<float>(call, entries[i], i);
    else add_tensor<double>(call, entries[i], i);
  }

  // 3. The fused pass, without the GIL.
  {
    py::gil_scoped_release release;
    dlopt::step(call.f32.data(), call.f32.size());
    dlopt::step(call.f64.data(), call.f64.size());
  }

  // 4. Host scalars back into the state dicts.
  for (std::size_t i = 0; i < entries.size(); ++i) {
    entries[i].state["step"] = call.scalars[i].step;
    if (Rule::tracks_mu_product) entries[i].state["mu_product"] = call.scalars[i].mu_product;
  }
}

// ---- the registry as seen from Python -----------------------------------------------------------

struct RuleInfo {
  void (*step)(const py::list&);
  py::dict (*defaults)();
  void (*validate)(const py::dict&);
  std::vector<std::string> slots;
};

template <class Rule>
RuleInfo info() {
  return {&step<Rule>,
          [] { return config_to_dict(typename Rule::Config{}); },
          [](const py::dict& d) { config_from_dict<typename Rule::Config>(d, ""); },
          std::vector<std::string>(Rule::slots.begin(), Rule::slots.end())};
}

const std::map<std::string, RuleInfo>& registry() {
#define DLOPT_REGISTER(Rule) {Rule::name, info<Rule>()},
  static const std::map<std::string, RuleInfo> table = {DLOPT_FOR_EACH_RULE(DLOPT_REGISTER)};
#undef DLOPT_REGISTER
  return table;
}

const RuleInfo& lookup(const std::string& name) {
  auto it = registry().find(name);
  if (it == registry().end()) throw py::value_error("unknown optimizer '" + name + "'");
  return it->second;
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("optimizers", [] {
    std::vector<std::string> names;
    for (const auto& kv : registry()) names.push_back(kv.first);
    return names;
  }, "Names of the optimizers in the registry.");
  m.def("step", [](const std::string& name, const py::list& groups) { lookup(name).step(groups); },
        py::arg("name"), py::arg("groups"),
        "One fused step of optimizer `name` over groups of (config, [(index, param, grad, state)]).");
  m.def("defaults", [](const std::string& name) { return lookup(name).defaults(); },
        "The C++ Config defaults of optimizer `name`, as a dict.");
  m.def("validate_config", [](const std::string& name, const py::dict& d) { lookup(name).validate(d); },
        "Raises TypeError/ValueError if `d` is not a valid config for optimizer `name`.");
  m.def("slot_names", [](const std::string& name) { return lookup(name).slots; },
        "Names of the per-element state buffers of optimizer `name`.");
  m.def("require_distinct", [](const py::list& arrays) {
    std::vector<Range> ranges;
    for (std::size_t i = 0; i < arrays.size(); ++i) {
      std::string what = "params[" + std::to_string(i) + "]";
      ranges.push_back(range_of(checked_array(arrays[i], what, true), what));
    }
    require_disjoint(std::move(ranges), {});
  }, "Checks that every entry is an in-place-updatable array and that no two share memory.");
}

}  // namespace dlopt::py_bindings
