#pragma once
// The host step plan: _core.StepPlan over NumPy parameters (see the comment below), the placement
// of an optimizer's parameters, and the base class the device plan (device_plan.hpp) shares.
// Included by optim.cpp only: one translation unit with the registry that instantiates it.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "arrays.hpp"
#include "device.hpp"
#include "optim_fields.hpp"
#include "dlopt/core/step.hpp"

namespace dlopt::py_bindings {
namespace {  // internal linkage, as in the one translation unit that includes this

/// Where an optimizer's parameters live. Mixed host and device parameters are an error.
enum class Placement { Host, Device };

/// Looks at every parameter of `groups` (param_groups: a list of dicts with a "params" list).
/// Anything malformed counts as host: the host plan's full checks report it.
inline Placement placement(const py::object& groups) {
  if (!PyList_Check(groups.ptr())) return Placement::Host;
  long first_host = -1, first_device = -1, index = 0;
  for (py::handle d : py::reinterpret_borrow<py::list>(groups)) {
    if (!PyDict_Check(d.ptr())) return Placement::Host;
    PyObject* params = PyDict_GetItemString(d.ptr(), "params");
    if (!params || !PyList_Check(params)) return Placement::Host;
    for (py::handle p : py::reinterpret_borrow<py::list>(params)) {
      if (is_device_array(p)) {
        if (first_device < 0) first_device = index;
      } else if (first_host < 0) {
        first_host = index;
      }
      ++index;
    }
  }
  if (first_device >= 0 && first_host >= 0)
    throw_mixed("params[" + std::to_string(first_device) + "]", "params[" + std::to_string(first_host) + "]");
  return first_device >= 0 ? Placement::Device : Placement::Host;
}

/// Thrown (internally) by a plan whose kind does not match the parameters; the plan switch
/// catches it and hands the call to the other kind. Raised before anything is modified.
struct WrongPlan {};

// ---- the bound step: what Optimizer.step calls ---------------------------------------------------
//
// A StepPlan is built at an optimizer's first step from its param_groups and state, and keeps
// references to every parameter and state array, their raw pointers, each group's parsed Config and
// the sorted memory ranges that a step writes. A later step re-checks only what can change between
// steps, at pointer-compare cost:
//   - the gradients (type, dtype, shape, contiguity, alignment, aliasing with anything written);
//   - each group's hyperparameters: the group dict must hold the very value objects parsed last
//     time, otherwise the group is parsed and validated again (so `group["lr"] = x` takes effect);
//   - that param_groups, each group's params list, the state dict, each tensor's state dict and its
//     arrays are the same objects as before, with the same data pointer, shape and flags.
// Anything else (a group added, load_state_dict, a state array replaced, a parameter made
// read-only...) makes the plan rebuild itself through the full checks before the step. Every check
// runs before anything is modified, so a failing step changes nothing.

namespace npy {
inline py::detail::PyArray_Proxy* proxy(PyObject* o) { return py::detail::array_proxy(o); }
inline bool is_array(PyObject* o) { return py::detail::npy_api::get().PyArray_Check_(o); }
constexpr int kContiguous = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_;
constexpr int kAligned = py::detail::npy_api::NPY_ARRAY_ALIGNED_;
constexpr int kWriteable = py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
}  // namespace npy

/// What the plan remembers of one array: the object (kept alive), its data pointer, shape, flags.
/// A shape (`ndim` extents, `size` elements) as the rules see it (dlopt::TensorShape): host arrays
/// and device arrays alike.
inline TensorShape shape_of(const py::ssize_t* shape, py::ssize_t ndim, int64_t size) {
  TensorShape t{size, 0, 1};
  if (ndim >= 2) {
    t.rows = t.size / std::max<int64_t>(shape[ndim - 1], 1);
    for (py::ssize_t d = 0; d + 2 < ndim; ++d) t.batch *= shape[d];
    if (t.size == 0) t.rows = 0, t.batch = 1;
  }
  return t;
}

/// An array's shape as the rules see it.
inline TensorShape shape_of(const py::array& a) { return shape_of(a.shape(), a.ndim(), int64_t(a.size())); }

/// state[key] of a tensor that has state: its dict (TypeError naming `where` for anything else), or
/// None when the tensor has no state yet.
inline py::object state_entry(const py::dict& sd, const py::object& key, const std::string& where) {
  if (!sd.contains(key)) return py::none();
  py::object entry = sd[key];
  if (!PyDict_Check(entry.ptr())) throw py::type_error(where + ": expected a dict");
  return entry;
}

// ---- what the host and device plans say about stored state (one wording for both) ----------------

/// Slot `what` is stored as `got`, but the optimizer's options (state_dtype `requested`, parameters
/// stored as `param`) store it as `expected`.
inline py::type_error wrong_slot_storage(const std::string& what, Storage got, Storage expected,
                                         StateDType requested, Storage param) {
  return py::type_error(what + ": stored as " + storage_name(got) + ", but this optimizer (state_dtype=" +
                        state_dtype_name(requested) + ", " + storage_name(param) + " parameters) stores it as " +
                        storage_name(expected));
}
/// `what` (a slot's "_scale" entry) beside a slot stored as `slot`, which has no scales.
inline py::value_error scales_without_8bit(const std::string& what, Storage slot) {
  return py::value_error(what + ": scales of a " + storage_name(slot) + " slot");
}
/// `what` (a slot's "_scale" entry) without the slot's codes.
inline py::value_error scales_without_codes(const std::string& what) {
  return py::value_error(what + " without its codes");
}
/// The scales `what` of an 8-bit slot are missing.
inline py::value_error missing_scales(const std::string& what) {
  return py::value_error(what + " is missing (8-bit state needs its scales)");
}
/// The scales `what` of an 8-bit slot of `codes` elements have the wrong shape (`got`).
inline py::value_error wrong_scales_shape(const std::string& what, int64_t codes, const std::string& got) {
  return py::value_error(what + ": expected shape (" + std::to_string(scale_count(codes)) + ",), got " + got);
}
/// A master copy `what` of parameter `param_what`, which does not keep one.
inline py::value_error unwanted_master(const std::string& what, const std::string& param_what) {
  return py::value_error(what + ": present, but master_weights is off or " + param_what + " is not 16-bit");
}

struct ArrayRef {
  py::object obj;
  void* data = nullptr;
  int ndim = 0;
  std::vector<py::ssize_t> shape;

  void set(py::object o) {
    obj = std::move(o);
    auto* a = npy::proxy(obj.ptr());
    data = a->data;
    ndim = a->nd;
    shape.assign(a->dimensions, a->dimensions + a->nd);
  }
  /// Still the same array, in place and writeable (`o` is what the container holds now).
  bool unchanged(PyObject* o) const {
    if (o != obj.ptr()) return false;
    auto* a = npy::proxy(o);
    constexpr int need = npy::kContiguous | npy::kAligned | npy::kWriteable;
    return a->data == data && a->nd == ndim && (a->flags & need) == need &&
           std::equal(shape.begin(), shape.end(), a->dimensions);
  }
};

/// The shape of slot k's array for a parameter of shape `dims` with TensorShape rows `rows`: the
/// parameter's, or (..., R, 1) / (..., 1, C) for factored slots (Adafactor). Host and device plans.
template <class Rule>
std::vector<py::ssize_t> slot_dims(std::vector<py::ssize_t> dims, int64_t rows, std::size_t k) {
  const SlotShape shape = Rule::slot_shape(int(k), rows);
  if (shape == SlotShape::Rows) dims.back() = 1;
  if (shape == SlotShape::Cols) dims[dims.size() - 2] = 1;
  return dims;
}

/// Matrix rules (Muon, Adafactor) take float32/float64 parameters (2-D ones unless !matrix_2d)
/// with state in the same dtype, for now: parameter `what` of `ndim` dimensions stored as
/// `storage`, with the state_dtype `requested`. Host and device plans.
template <class Rule>
void check_matrix_param(const std::string& what, std::size_t ndim, Storage storage, StateDType requested) {
  if (Rule::matrix_2d && ndim != 2)
    throw py::value_error(what + ": " + Rule::name + " updates 2-D parameters only, got " + std::to_string(ndim) + "-D");
  if (is_16bit(storage)) throw py::type_error(what + ": " + Rule::name + " takes float32 or float64 parameters for now");
  for (std::size_t k = 0; k < num_slots<Rule>; ++k)
    if (slot_storage(Rule::slot_kind(int(k)), requested, storage) != storage)
      throw py::value_error(what + ": " + Rule::name + " keeps its state in the parameter's dtype for now (state_dtype=" +
                            state_dtype_name(requested) + " is not supported)");
}

class StepPlanBase {
 public:
  virtual ~StepPlanBase() = default;
  virtual void step(const py::object& groups, const py::object& state, const py::object& grads) = 0;
  /// The full checks of param_groups and state that a step makes, changing nothing (host arrays;
  /// device state is checked by the device step).
  virtual void check(const py::object& groups, const py::object& state) = 0;
};

template <class Rule>
class StepPlan final : public StepPlanBase {
  using Config = typename Rule::Config;
  static constexpr std::size_t S = num_slots<Rule>;
  // Steps below this many elements run with the GIL held: releasing it costs more than the kernel.
  static constexpr int64_t kReleaseGilMin = int64_t(1) << 15;

  struct Group {
    py::object dict;                                      // the param group
    py::object params;                                    // its "params" list
    std::vector<std::pair<py::object, py::object>> items; // (key, value) parsed into config
    // A value that can change in place (a 0-d array or tensor, a list): the group is parsed again
    // at every step, since an unchanged identity proves nothing (torch's schedulers fill_ tensor lrs).
    bool mutable_values = false;
    Config config;
    StorageOptions storage;
  };
  struct Tensor {
    ArrayRef param;
    std::size_t group = 0;
    Storage storage = Storage::Float32;  // the parameter's (and its gradient's)
    int64_t size = 0;
    TensorShape shape;      // size, rows and batch, as the rules see them
    py::object key;         // int index into the state dict
    py::object state;       // its state dict, or None before its first step
    std::array<ArrayRef, S> slots;
    std::array<ArrayRef, S> scales;  // block scales of 8-bit slots
    std::array<Storage, S> slot_storage{};
    ArrayRef master;        // float32 master copy of a 16-bit parameter (master_weights)
    py::object step_obj;    // state["step"] as last read or written
    std::array<py::object, kMaxScalars> scalar_obj;  // state[Rule::scalars[k]] as last read or written
    TensorScalars scalars;
  };

  bool valid_ = false;
  py::object groups_, state_;
  std::vector<Group> group_;
  std::vector<Tensor> tensor_;
  std::vector<Range> written_;  // sort_nonempty: by begin, empty ranges dropped
  // Per-step scratch, reused: no allocation per step once warm.
  std::vector<TensorStep<Rule, float>> f32_;
  std::vector<TensorStep<Rule, double>> f64_;
  std::vector<std::size_t> active_;
  std::vector<py::object> held_;  // the gradients of the running step
  std::vector<Range> read_;
  py::object step_key_ = py::str("step"), params_key_ = py::str("params");
  py::object master_key_ = py::str("master_param");
  std::array<py::object, S> slot_key_, scale_key_;
  std::array<py::object, kMaxScalars> scalar_key_;

 public:
  StepPlan() {
    for (std::size_t k = 0; k < S; ++k) {
      slot_key_[k] = py::str(Rule::slots[k]);
      scale_key_[k] = py::str(std::string(Rule::slots[k]) + "_scale");
    }
    for (std::size_t k = 0; k < Rule::scalars.size(); ++k) scalar_key_[k] = py::str(Rule::scalars[k]);
  }

  void check(const py::object& groups, const py::object& state) override { rebuild(groups, state); }

  void step(const py::object& groups, const py::object& state, const py::object& grads) override {
    if (!valid_ || !still_valid(groups, state)) rebuild(groups, state);

    // 1. Checks; nothing is modified.
    if (!PyList_Check(grads.ptr()) && !PyTuple_Check(grads.ptr()))
      throw py::type_error("grads: expected a list with one array per parameter, got " +
                           py::str(py::type::handle_of(grads).attr("__name__")).cast<std::string>());
    PyObject* const* g = PySequence_Fast_ITEMS(grads.ptr());
    const std::size_t n = std::size_t(PySequence_Fast_GET_SIZE(grads.ptr()));
    if (n != tensor_.size())
      throw py::value_error("grads: expected " + std::to_string(tensor_.size()) +
                            " gradients (one per parameter), got " + std::to_string(n));
    bool storage_changed = false;
    for (std::size_t gi = 0; gi < group_.size(); ++gi) storage_changed |= refresh_config(gi);
    if (storage_changed) rebuild(groups, state);  // existing state checked against the new options
    active_.clear();
    bool fresh_state = false;
    for (std::size_t i = 0; i < n; ++i) {
      if (g[i] == Py_None) continue;
      check_grad(i, g[i]);
      if constexpr (Rule::matrix) check_matrix(i);
      active_.push_back(i);
      fresh_state |= tensor_[i].state.is_none();
    }
    check_grad_aliasing(g);

    // 2. Lazy state for tensors stepping for the first time (all checks have passed).
    if (fresh_state) {
      for (std::size_t i : active_)
        if (tensor_[i].state.is_none()) create_state(i);
      sort_nonempty(written_);
    }

    // 3. The fused pass. The gradients are borrowed from the caller's list, which another thread may
    //    change while the kernel runs without the GIL: hold a reference to each until the step ends.
    held_.clear();
    for (std::size_t i : active_) held_.push_back(py::reinterpret_borrow<py::object>(g[i]));
    f32_.clear();
    f64_.clear();
    int64_t total = 0;
    for (std::size_t i : active_) {
      Tensor& t = tensor_[i];
      total += t.size;
      if (t.storage == Storage::Float64) f64_.push_back(tensor_step<double>(t, g[i], i));
      else f32_.push_back(tensor_step<float>(t, g[i], i));
    }
    if (total >= kReleaseGilMin) {
      py::gil_scoped_release release;
      dlopt::step(f32_.data(), f32_.size());
      dlopt::step(f64_.data(), f64_.size());
    } else {
      dlopt::step(f32_.data(), f32_.size());
      dlopt::step(f64_.data(), f64_.size());
    }

    // 4. Host scalars back into the state dicts.
    for (std::size_t i : active_) {
      Tensor& t = tensor_[i];
      t.step_obj = py::reinterpret_steal<py::object>(PyLong_FromLongLong(t.scalars.step));
      if (PyDict_SetItem(t.state.ptr(), step_key_.ptr(), t.step_obj.ptr()) != 0) throw py::error_already_set();
      for (std::size_t k = 0; k < Rule::scalars.size(); ++k) {
        t.scalar_obj[k] = py::float_(t.scalars.value[k]);
        if (PyDict_SetItem(t.state.ptr(), scalar_key_[k].ptr(), t.scalar_obj[k].ptr()) != 0)
          throw py::error_already_set();
      }
    }
  }

 private:
  static std::string idx(std::size_t i) { return std::to_string(i); }

  /// Cheap identity checks of everything the plan caches; false means rebuild.
  bool still_valid(const py::object& groups, const py::object& state) {
    if (groups.ptr() != groups_.ptr() || state.ptr() != state_.ptr()) return false;
    if (!PyList_Check(groups.ptr()) || std::size_t(PyList_GET_SIZE(groups.ptr())) != group_.size())
      return false;
    std::size_t ti = 0;
    for (std::size_t gi = 0; gi < group_.size(); ++gi) {
      const Group& grp = group_[gi];
      PyObject* d = PyList_GET_ITEM(groups.ptr(), gi);
      if (d != grp.dict.ptr() || !PyDict_Check(d)) return false;
      PyObject* params = PyDict_GetItemWithError(d, params_key_.ptr());
      if (params != grp.params.ptr() || !PyList_Check(params)) return false;
      const std::size_t np = std::size_t(PyList_GET_SIZE(params));
      for (std::size_t j = 0; j < np; ++j, ++ti)
        if (ti >= tensor_.size() || !tensor_[ti].param.unchanged(PyList_GET_ITEM(params, j))) return false;
    }
    if (ti != tensor_.size()) return false;
    for (Tensor& t : tensor_) {
      PyObject* s = PyDict_GetItemWithError(state.ptr(), t.key.ptr());
      if (t.state.is_none()) {
        if (s) return false;
        continue;
      }
      if (s != t.state.ptr() || !PyDict_Check(s)) return false;
      for (std::size_t k = 0; k < S; ++k) {
        PyObject* a = PyDict_GetItemWithError(s, slot_key_[k].ptr());
        if (t.slots[k].obj) {
          if (!t.slots[k].unchanged(a)) return false;
        } else if (a) {
          return false;  // a state buffer appeared
        }
        PyObject* sc = PyDict_GetItemWithError(s, scale_key_[k].ptr());
        if (t.scales[k].obj ? !t.scales[k].unchanged(sc) : sc != nullptr) return false;
      }
      PyObject* m = PyDict_GetItemWithError(s, master_key_.ptr());
      if (t.master.obj ? !t.master.unchanged(m) : m != nullptr) return false;
      PyObject* st = PyDict_GetItemWithError(s, step_key_.ptr());
      if (st != t.step_obj.ptr()) {
        if (!st) return false;  // removed: the full path decides
        t.scalars.step = step_value(st, "state[" + py::repr(t.key).template cast<std::string>() + "]['step']");
        t.step_obj = py::reinterpret_borrow<py::object>(st);  // cached only once it is valid
      }
      for (std::size_t k = 0; k < Rule::scalars.size(); ++k) {
        PyObject* v = PyDict_GetItemWithError(s, scalar_key_[k].ptr());
        if (v != t.scalar_obj[k].ptr()) {
          if (!v) return false;
          t.scalars.value[k] = scalar_value(v, "state[" + py::repr(t.key).template cast<std::string>() + "]['" +
                                                   Rule::scalars[k] + "']");
          t.scalar_obj[k] = py::reinterpret_borrow<py::object>(v);
        }
      }
    }
    if (PyErr_Occurred()) throw py::error_already_set();
    return true;
  }

  /// Parses group gi's hyperparameters again if any value object changed; true if its storage
  /// options changed (the existing state must then be checked against them).
  bool refresh_config(std::size_t gi) {
    Group& grp = group_[gi];
    PyObject* d = grp.dict.ptr();
    bool same = std::size_t(PyDict_Size(d)) == grp.items.size() + 1;  // + "params"
    for (std::size_t k = 0; same && k < grp.items.size(); ++k)
      same = PyDict_GetItemWithError(d, grp.items[k].first.ptr()) == grp.items[k].second.ptr();
    if (same && !grp.mutable_values) return false;
    const StorageOptions before = grp.storage;
    parse_group(gi);
    return before != grp.storage;
  }

  void parse_group(std::size_t gi) {
    Group& grp = group_[gi];
    const std::string where = "param_groups[" + idx(gi) + "]: ";
    py::dict d = py::reinterpret_borrow<py::dict>(grp.dict);
    // A hyperparameter deleted from a group is an error, as in torch (not a silent default).
    for (const auto& [key, value] : grp.items)
      if (!d.contains(key))
        throw py::key_error(where + py::repr(key).template cast<std::string>() +
                            " was removed from the param group (set it to a value instead)");
    std::vector<std::pair<py::object, py::object>> items;
    py::dict fields = group_fields(d, where, params_key_, &items);
    Config config = config_from_dict<Config>(fields, where);
    const StorageOptions storage = storage_options(d, where);
    grp.config = config;
    grp.storage = storage;
    grp.mutable_values = std::any_of(items.begin(), items.end(), [&](const auto& kv) {
      return is_read_key(kv.first, fields) && !is_immutable_value(kv.second);
    });
    grp.items = std::move(items);
  }

  /// Whether the step reads a group key: a Config field, a storage option, or a composite keyword that
  /// group_fields turned into fields (betas -> beta1, beta2). A key it passed through unchanged that is
  /// no Config field (torch's "name", "foreach", a scheduler's "initial_lr") is kept and never read.
  static bool is_read_key(const py::object& key, const py::dict& fields) {
    static const std::vector<std::string> config_names = [] {
      std::vector<std::string> n;
      Config c;
      c.visit([&](const char* k, auto&) { n.emplace_back(k); });
      return n;
    }();
    if (!py::isinstance<py::str>(key)) return false;
    const std::string k = key.cast<std::string>();
    if (is_storage_key(k) || !fields.contains(key)) return true;
    return std::find(config_names.begin(), config_names.end(), k) != config_names.end();
  }

  void check_grad(std::size_t i, PyObject* g) {
    const Tensor& t = tensor_[i];
    if (npy::is_array(g)) {
      auto* a = npy::proxy(g);
      auto* p = npy::proxy(t.param.obj.ptr());
      constexpr int need = npy::kContiguous | npy::kAligned;
      if (a->descr == p->descr && a->nd == p->nd && (a->flags & need) == need &&
          std::equal(a->dimensions, a->dimensions + a->nd, p->dimensions))
        return;
    }
    // Not the common case: the full check raises with the argument's name, or accepts it.
    const std::string what = "grads[" + idx(i) + "]";
    py::array a = stored_array(g, what, false, {Storage::Float32, Storage::Float64, Storage::BFloat16, Storage::Float16});
    if (*storage_of(a) != t.storage)
      throw py::type_error(what + ": dtype " + storage_name(*storage_of(a)) + " does not match params[" +
                           idx(i) + "]'s " + storage_name(t.storage));
    if (a.ndim() != t.param.ndim || !std::equal(a.shape(), a.shape() + a.ndim(), t.param.shape.begin()))
      throw py::value_error(what + ": shape " + py::str(a.attr("shape")).cast<std::string>() +
                            " does not match params[" + idx(i) + "]'s " +
                            py::str(t.param.obj.attr("shape")).cast<std::string>());
  }

  void check_matrix(std::size_t i) const {
    const Tensor& t = tensor_[i];
    check_matrix_param<Rule>("params[" + idx(i) + "]", std::size_t(t.param.ndim), t.storage,
                             group_[t.group].storage.state_dtype);
  }

  void check_grad_aliasing(PyObject* const* g) {
    for (std::size_t i : active_) {
      auto* a = npy::proxy(g[i]);
      const char* begin = static_cast<const char*>(a->data);
      const char* end = begin + tensor_[i].size * int64_t(storage_bytes(tensor_[i].storage));
      if (const Range* hit = find_overlap(written_, begin, end))
        throw py::value_error("grads[" + idx(i) + "] shares memory with " + hit->what);
    }
  }

  void create_state(std::size_t i) {
    Tensor& t = tensor_[i];
    py::dict entry;
    const Config& config = group_[t.group].config;
    for (std::size_t k = 0; k < S; ++k)
      if (slot_elements<Rule>(config, int(k), t.shape) > 0) make_slot(t, k, i, entry);
    if (wants_master(t)) make_master(t, i, entry);
    t.scalars = TensorScalars{};
    t.step_obj = py::int_(0);
    entry[step_key_] = t.step_obj;
    for (std::size_t k = 0; k < Rule::scalars.size(); ++k) {
      t.scalars.value[k] = Rule::scalar_init(config, int(k));
      t.scalar_obj[k] = py::float_(t.scalars.value[k]);
      entry[scalar_key_[k]] = t.scalar_obj[k];
    }
    if (PyDict_SetItem(state_.ptr(), t.key.ptr(), entry.ptr()) != 0) throw py::error_already_set();
    t.state = entry;
  }

  /// The shape of slot k's array: the parameter's, or (..., R, 1) / (..., 1, C) for factored slots.
  std::vector<py::ssize_t> slot_dims(const Tensor& t, std::size_t k) const {
    return py_bindings::slot_dims<Rule>({t.param.shape.begin(), t.param.shape.end()}, t.shape.rows, k);
  }

  bool wants_master(const Tensor& t) const {
    return group_[t.group].storage.master_weights && is_16bit(t.storage);
  }

  /// A new state slot k for tensor i in the storage its options give, initialised by the rule;
  /// the one place host state is allocated.
  void make_slot(Tensor& t, std::size_t k, std::size_t i, py::dict entry) {
    const Group& grp = group_[t.group];
    const Storage storage = slot_storage(Rule::slot_kind(int(k)), grp.storage.state_dtype, t.storage);
    py::array fresh(numpy_dtype(storage), slot_dims(t, k));
    const int64_t n = fresh.size();
    const std::string what = "state[" + idx(i) + "]['" + Rule::slots[k] + "']";
    float* scale = nullptr;
    if (is_8bit(storage)) {
      py::array_t<float> scales(scale_count(n));
      scale = scales.mutable_data();
      entry[scale_key_[k]] = scales;
      t.scales[k].set(scales);
      written_.push_back(range_of(scales, what + " scales"));
    }
    fill_state(Buffer(fresh.mutable_data(), storage, scale), n, Rule::slot_init(grp.config, int(k)));
    entry[slot_key_[k]] = fresh;
    t.slots[k].set(fresh);
    t.slot_storage[k] = storage;
    written_.push_back(range_of(fresh, what));
  }

  void make_master(Tensor& t, std::size_t i, py::dict entry) {
    py::array_t<float> fresh(std::vector<py::ssize_t>(t.param.shape.begin(), t.param.shape.end()));
    to_float(Buffer(t.param.data, t.storage), t.size, fresh.mutable_data());
    entry[master_key_] = fresh;
    t.master.set(fresh);
    written_.push_back(range_of(fresh, "state[" + idx(i) + "]['master_param']"));
  }

  template <class C>
  TensorStep<Rule, C> tensor_step(Tensor& t, PyObject* g, std::size_t i) {
    const Group& grp = group_[t.group];
    TensorStep<Rule, C> s;
    s.param = Buffer(t.param.data, t.storage);
    s.grad = Buffer(npy::proxy(g)->data, t.storage);
    s.size = t.size;
    s.config = &grp.config;
    s.scalars = &t.scalars;
    s.rounding = {grp.storage.stochastic_rounding, grp.storage.seed, uint64_t(i)};
    s.rows = t.shape.rows;
    s.batch = t.shape.batch;
    py::dict entry = py::reinterpret_borrow<py::dict>(t.state);
    for (std::size_t k = 0; k < S; ++k) {
      if (!t.slots[k].obj && slot_elements<Rule>(grp.config, int(k), t.shape) > 0) {
        // A slot switched on after this tensor's state was made (e.g. amsgrad turned on later).
        make_slot(t, k, i, entry);
        valid_ = false;  // re-derive the written ranges next step
      }
      s.slots[k] = Buffer(t.slots[k].data, t.slot_storage[k],
                          t.scales[k].obj ? static_cast<float*>(t.scales[k].data) : nullptr);
    }
    if (!t.master.obj && wants_master(t)) {
      make_master(t, i, entry);
      valid_ = false;
    }
    s.master = wants_master(t) ? static_cast<float*>(t.master.data) : nullptr;
    return s;
  }

  void require_shape(const py::array& a, const Tensor& t, const std::string& what) {
    if (a.ndim() != t.param.ndim || !std::equal(a.shape(), a.shape() + a.ndim(), t.param.shape.begin()))
      throw py::value_error(what + ": shape " + py::str(a.attr("shape")).cast<std::string>() +
                            " does not match the parameter's " +
                            py::str(t.param.obj.attr("shape")).cast<std::string>());
  }

  /// An existing state slot must be stored as the group's options store it (with its scales).
  void check_slot(Tensor& t, std::size_t k, std::size_t i, const py::dict& e, std::vector<Range>& written) {
    const std::string what = "state[" + idx(i) + "]['" + Rule::slots[k] + "']";
    const StateDType requested = group_[t.group].storage.state_dtype;
    const Storage expected = slot_storage(Rule::slot_kind(int(k)), requested, t.storage);
    py::array s = stored_array(e[slot_key_[k]], what, true,
                               {Storage::Float32, Storage::Float64, Storage::BFloat16, Storage::Float16,
                                Storage::Int8, Storage::UInt8});
    const std::vector<py::ssize_t> dims = slot_dims(t, k);
    if (dims == t.param.shape) {
      require_shape(s, t, what);
    } else if (s.ndim() != py::ssize_t(dims.size()) || !std::equal(dims.begin(), dims.end(), s.shape())) {
      throw py::value_error(what + ": shape " + py::str(s.attr("shape")).cast<std::string>() + " does not match " +
                            py::str(py::tuple(py::cast(dims))).cast<std::string>() + ", its shape for a parameter of " +
                            py::str(t.param.obj.attr("shape")).cast<std::string>());
    }
    const Storage got = *storage_of(s);
    if (got != expected) throw wrong_slot_storage(what, got, expected, requested, t.storage);
    t.slots[k].set(s);
    t.slot_storage[k] = got;
    written.push_back(range_of(s, what));
    const std::string swhat = "state[" + idx(i) + "]['" + Rule::slots[k] + "_scale']";
    if (!is_8bit(got)) {
      if (e.contains(scale_key_[k])) throw scales_without_8bit(swhat, got);
      return;
    }
    if (!e.contains(scale_key_[k])) throw missing_scales(swhat);
    py::array sc = stored_array(e[scale_key_[k]], swhat, true, {Storage::Float32});
    if (sc.ndim() != 1 || sc.shape(0) != scale_count(s.size()))
      throw wrong_scales_shape(swhat, s.size(), py::str(sc.attr("shape")).cast<std::string>());
    t.scales[k].set(sc);
    written.push_back(range_of(sc, swhat));
  }

  /// The full checks, as the per-call path did them; builds every cache.
  void rebuild(const py::object& groups, const py::object& state) {
    valid_ = false;
    if (!PyList_Check(groups.ptr())) throw py::type_error("param_groups: expected a list");
    if (!PyDict_Check(state.ptr())) throw py::type_error("state: expected a dict");
    if (placement(groups) == Placement::Device) throw WrongPlan{};
    std::vector<Tensor> tensors;
    std::vector<Range> written;
    // The current plan's tensors by state dict: a slot one held that its dict lacks now was deleted
    // by the caller (a KeyError, as torch), while a slot an option switched on later is created.
    std::unordered_map<PyObject*, const Tensor*> known;
    for (const Tensor& t : tensor_)
      if (!t.state.is_none()) known.emplace(t.state.ptr(), &t);
    group_.clear();  // parse_group works on group_
    try {
      py::list gl = py::reinterpret_borrow<py::list>(groups);
      py::dict sd = py::reinterpret_borrow<py::dict>(state);
      for (std::size_t gi = 0; gi < gl.size(); ++gi) {
        py::object d = gl[gi];
        if (!PyDict_Check(d.ptr())) throw py::type_error("param_groups[" + idx(gi) + "]: expected a dict");
        Group grp;
        grp.dict = d;
        grp.params = d[params_key_];
        if (!PyList_Check(grp.params.ptr()))
          throw py::type_error("param_groups[" + idx(gi) + "]['params']: expected a list");
        group_.push_back(std::move(grp));
        parse_group(gi);
        for (py::handle p : py::reinterpret_borrow<py::list>(group_[gi].params)) {
          const std::size_t i = tensors.size();
          Tensor t;
          const std::string name = "params[" + idx(i) + "]";
          py::array a = stored_array(p, name, /*writeable=*/true,
                                     {Storage::Float32, Storage::Float64, Storage::BFloat16, Storage::Float16});
          t.param.set(a);
          t.group = gi;
          t.storage = *storage_of(a);
          t.size = a.size();
          t.shape = shape_of(a);
          t.key = py::int_(i);
          written.push_back(range_of(a, name));
          t.state = state_entry(sd, t.key, "state[" + idx(i) + "]");
          if (!t.state.is_none()) {
            py::dict e = py::reinterpret_borrow<py::dict>(t.state);
            const auto found = known.find(t.state.ptr());
            const Tensor* before = found == known.end() ? nullptr : found->second;
            for (std::size_t k = 0; k < S; ++k) {
              if (!e.contains(slot_key_[k])) {
                if (e.contains(scale_key_[k]))
                  throw scales_without_codes("state[" + idx(i) + "]['" + Rule::slots[k] + "_scale']");
                if (before && before->slots[k].obj)  // deleted, as torch's KeyError says
                  throw py::key_error("state[" + idx(i) + "]['" + Rule::slots[k] + "'] was deleted; the step "
                                      "does not re-create a state slot (load_state_dict a whole state instead)");
                continue;
              }
              check_slot(t, k, i, e, written);
            }
            if (!e.contains(master_key_) && before && before->master.obj)
              throw py::key_error("state[" + idx(i) + "]['master_param'] was deleted; the step does not "
                                  "re-create it (load_state_dict a whole state instead)");
            if (e.contains(master_key_)) {
              const std::string what = "state[" + idx(i) + "]['master_param']";
              if (!wants_master(t)) throw unwanted_master(what, "params[" + idx(i) + "]");
              py::array m = stored_array(e[master_key_], what, true, {Storage::Float32});
              require_shape(m, t, what);
              t.master.set(m);
              written.push_back(range_of(m, what));
            }
            // Absent scalars start at their defaults (null cached object = "absent").
            if (e.contains(step_key_)) {
              t.scalars.step = step_value(e[step_key_], "state[" + idx(i) + "]['step']");
              t.step_obj = e[step_key_];
            }
            for (std::size_t k = 0; k < Rule::scalars.size(); ++k) {
              if (!e.contains(scalar_key_[k])) continue;
              t.scalars.value[k] = scalar_value(e[scalar_key_[k]], "state[" + idx(i) + "]['" + Rule::scalars[k] + "']");
              t.scalar_obj[k] = e[scalar_key_[k]];
            }
          }
          tensors.push_back(std::move(t));
        }
      }
      require_disjoint(written, {});  // sorts nothing of ours: takes a copy
    } catch (...) {
      group_.clear();
      throw;
    }
    sort_nonempty(written);
    tensor_ = std::move(tensors);
    written_ = std::move(written);
    groups_ = groups;
    state_ = state;
    valid_ = true;
  }
};

}  // namespace
}  // namespace dlopt::py_bindings
