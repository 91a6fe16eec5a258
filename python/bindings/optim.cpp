// Python face of the optimizer core: one generic binding per rule in the registry. By part:
// optim_fields (hyperparameters and storage options <-> Config), step_plan.hpp (the host plan),
// device_plan.hpp (the device plan and the switch between the two), and here the registry as
// Python sees it and the bindings.
//
// _core.StepPlan(name).step(param_groups, state, grads) is what Optimizer.step calls. It checks
// everything first (types, dtypes, shapes, contiguity, aliasing, hyperparameters), then creates
// missing state, then runs one fused multi-tensor pass with the GIL released, then writes the step
// counters back into `state`. A failure in the checks leaves parameters and state untouched.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "device_plan.hpp"
#include "optim_fields.hpp"
#include "step_plan.hpp"
#include "dlopt/optim/registry.hpp"

namespace dlopt::py_bindings {

namespace {

// ---- the registry as seen from Python -----------------------------------------------------------

struct RuleInfo {
  std::unique_ptr<StepPlanBase> (*plan)();
  py::dict (*defaults)();
  void (*validate)(const py::dict&);
  std::vector<std::string> slots;
  py::dict (*layout)(const py::dict&, Storage);
  py::dict (*shapes)(const std::vector<py::ssize_t>&);
  std::vector<std::string> scalars;
  bool on_device;  ///< the CUDA step supports it
};

/// The dtype of every state entry a tensor stored as `param` may hold under the group's options
/// (each slot, its scales when 8-bit, the master copy when kept), as slot_storage decides.
template <class Rule>
py::dict state_layout(const py::dict& group, Storage param) {
  const StorageOptions options = storage_options(group, "");
  py::dict layout;
  for (std::size_t k = 0; k < num_slots<Rule>; ++k) {
    const Storage s = slot_storage(Rule::slot_kind(int(k)), options.state_dtype, param);
    layout[Rule::slots[k]] = numpy_dtype(s);
    if (is_8bit(s)) layout[py::str(std::string(Rule::slots[k]) + "_scale")] = numpy_dtype(Storage::Float32);
  }
  if (options.master_weights && is_16bit(param)) layout["master_param"] = numpy_dtype(Storage::Float32);
  return layout;
}

/// The shape of each slot that is not shaped like its parameter (Adafactor's row and column
/// statistics), for a parameter of shape `dims`.
template <class Rule>
py::dict slot_shapes(const std::vector<py::ssize_t>& dims) {
  py::dict out;
  int64_t size = 1;
  for (py::ssize_t d : dims) size *= d;
  const int64_t rows = dims.size() >= 2 && size > 0 ? size / dims.back() : 0;
  for (std::size_t k = 0; k < num_slots<Rule>; ++k) {
    const SlotShape shape = Rule::slot_shape(int(k), rows);
    if (shape == SlotShape::Rows || shape == SlotShape::Cols) out[Rule::slots[k]] = py::tuple(py::cast(slot_dims<Rule>(dims, rows, k)));
  }
  return out;
}

template <class Rule>
RuleInfo info() {
  return {&make_plan<Rule>,
          [] { return config_to_dict(typename Rule::Config{}); },
          [](const py::dict& d) { config_from_dict<typename Rule::Config>(d, ""); },
          std::vector<std::string>(Rule::slots.begin(), Rule::slots.end()),
          &state_layout<Rule>,
          &slot_shapes<Rule>,
          std::vector<std::string>(Rule::scalars.begin(), Rule::scalars.end()),
          cuda::has_step<Rule>};
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
  py::class_<StepPlanBase>(m, "StepPlan",
                           "An optimizer's bound step: caches its checked arguments between steps.")
      .def(py::init([](const std::string& name) { return lookup(name).plan(); }), py::arg("name"))
      .def("step", &StepPlanBase::step, py::arg("param_groups"), py::arg("state"), py::arg("grads"),
           "One fused step over param_groups with `grads`, updating `state` in place.")
      .def("check", &StepPlanBase::check, py::arg("param_groups"), py::arg("state"),
           "The checks of a step on param_groups and state (dtypes, shapes, storage, aliasing), "
           "changing nothing.");
  m.def("optimizers", [] {
    std::vector<std::string> names;
    for (const auto& kv : registry()) names.push_back(kv.first);
    return names;
  }, "Names of the optimizers in the registry.");
  m.def("defaults", [](const std::string& name) { return lookup(name).defaults(); },
        "The C++ Config defaults of optimizer `name`, as a dict.");
  m.def("config_fields", [](const py::dict& group, const std::string& where) {
    return group_fields(group, where, py::str("params"), nullptr);
  }, py::arg("group"), py::arg("where") = "",
     "A param group's hyperparameters as the C++ Config's fields (betas -> beta1, beta2, ...), "
     "without 'params' and the storage keys.");
  m.def("validate_config", [](const std::string& name, const py::dict& d) { lookup(name).validate(d); },
        "Raises TypeError/ValueError if `d` is not a valid config for optimizer `name`.");
  m.def("slot_names", [](const std::string& name) { return lookup(name).slots; },
        "Names of the per-element state buffers of optimizer `name`.");
  m.def("runs_on_device", [](const std::string& name) { return lookup(name).on_device; },
        "Whether optimizer `name` has a CUDA step (Muon is CPU-only for now).");
  m.def("scalar_names", [](const std::string& name) { return lookup(name).scalars; },
        "Names of the per-tensor float scalars of optimizer `name` (state keys besides 'step').");
  m.def("state_layout", [](const std::string& name, const py::dict& group, const py::object& param) {
    if (is_device_array(param))  // the device plan stores state as the host plan does
      return lookup(name).layout(group, device_view(param, "param", false, kParamStorages).storage);
    const std::optional<Storage> s = py::isinstance<py::array>(param)
                                         ? storage_of(py::reinterpret_borrow<py::array>(param))
                                         : std::nullopt;
    if (!s || is_8bit(*s)) throw py::type_error("param: not a parameter dtype");
    return lookup(name).layout(group, *s);
  }, py::arg("name"), py::arg("group"), py::arg("param"),
     "The dtype of each state entry of a parameter like `param` (a NumPy or device array) under the "
     "group's storage options: what the host and the device step allocate, and accept.");
  m.def("slot_shapes", [](const std::string& name, const std::vector<py::ssize_t>& shape) {
    return lookup(name).shapes(shape);
  }, py::arg("name"), py::arg("shape"),
     "The shape of each state slot that is not shaped like a parameter of `shape` (Adafactor's row_var, col_var).");
  m.def("storage_keys", [] { return std::vector<std::string>(kStorageKeys.begin(), kStorageKeys.end()); },
        "The param-group keys that choose how parameters are rounded and state is stored.");
  m.def("check_storage_options", [](const py::dict& group) { storage_options(group, ""); },
        "Raises TypeError/ValueError unless the group's state_dtype, stochastic_rounding, "
        "master_weights and seed are valid.");
  m.def("dequantize", [](const py::array& codes, const py::object& scales) {
    py::array c = stored_array(codes, "codes", false, {Storage::Float32, Storage::Float64, Storage::BFloat16,
                                                       Storage::Float16, Storage::Int8, Storage::UInt8});
    const Storage storage = *storage_of(c);
    py::array_t<float> out(std::vector<py::ssize_t>(c.shape(), c.shape() + c.ndim()));
    float* scale = nullptr;
    py::array sc;
    if (is_8bit(storage)) {
      if (scales.is_none()) throw py::value_error("scales: 8-bit codes need their block scales");
      sc = stored_array(scales, "scales", false, {Storage::Float32});
      if (sc.ndim() != 1 || sc.shape(0) != scale_count(c.size()))
        throw py::value_error("scales: expected shape (" + std::to_string(scale_count(c.size())) + ",)");
      scale = static_cast<float*>(const_cast<void*>(sc.data()));
    }
    if (storage == Storage::Float64) throw py::type_error("codes: float64 state is not a stored format to decode");
    to_float(Buffer(const_cast<void*>(c.data()), storage, scale), c.size(), out.mutable_data());
    return out;
  }, py::arg("codes"), py::arg("scales") = py::none(),
     "A float32 copy of a stored state buffer: 8-bit codes with their block scales, bfloat16, float16 or float32.");
  m.def("require_distinct", [](const py::list& arrays) {
    long first_host = -1, first_device = -1;
    for (std::size_t i = 0; i < arrays.size(); ++i) {
      long& first = is_device_array(arrays[i]) ? first_device : first_host;
      if (first < 0) first = long(i);
    }
    if (first_host >= 0 && first_device >= 0)
      throw_mixed("params[" + std::to_string(first_device) + "]", "params[" + std::to_string(first_host) + "]");
    std::vector<Range> ranges;
    for (std::size_t i = 0; i < arrays.size(); ++i) {
      std::string what = "params[" + std::to_string(i) + "]";
      if (first_device >= 0) ranges.push_back(range_of(device_view(arrays[i], what, true, kParamStorages), what));
      else ranges.push_back(range_of(stored_array(arrays[i], what, true, {Storage::Float32, Storage::Float64,
                                                                          Storage::BFloat16, Storage::Float16}), what));
    }
    require_disjoint(std::move(ranges), {});
  }, "Checks that every entry is an in-place-updatable array (all NumPy, or all CUDA device "
     "arrays) and that no two share memory.");
}

}  // namespace dlopt::py_bindings
