#pragma once
// The device step plan (parameters that are CUDA device arrays) and PlanSwitch, the plan that
// _core.StepPlan binds: the host StepPlan or the DeviceStepPlan, chosen by where the parameters are.
// Included by optim.cpp only: one translation unit with the registry that instantiates it.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "arrays.hpp"
#include "device.hpp"
#include "optim_fields.hpp"
#include "step_plan.hpp"
#include "dlopt/cuda/memory.hpp"
#include "dlopt/cuda/step.hpp"
#include "dlopt/cuda/support.hpp"
#include "dlopt/core/step.hpp"

namespace dlopt::py_bindings {
namespace {  // internal linkage, as in the one translation unit that includes this

// ---- the device step: parameters that are CUDA device arrays --------------------------------------
//
// Device parameters, gradients and state are read through __cuda_array_interface__ (CuPy, PyTorch
// CUDA tensors, Numba) or are dlopt's own DeviceArray (state created here). Unlike the host plan,
// every interface is parsed again at every step (an object may change its buffer without
// changing identity, e.g. torch's `param.data = ...`): the host cost is a few microseconds per
// tensor, and one kernel launch runs the whole step. The order is the host plan's: every check
// (interfaces, dtypes, shapes, contiguity, aliasing, hyperparameters, one device for all) first,
// then state allocation, then the launch on the legacy default stream, then the step counters.
// Parameters may be float32/float64 or 16-bit (gradients in the same dtype), and state is stored as
// the host plan stores it: each slot in the format slot_storage gives for the group's options, 8-bit
// codes with a float32 "<slot>_scale" array, a float32 "master_param" for 16-bit parameters with
// master_weights; existing state is checked against that, with the host plan's messages.

template <class Rule>
class DeviceStepPlan final : public StepPlanBase {
 public:
  void check(const py::object&, const py::object&) override {}

 private:
  using Config = typename Rule::Config;
  static constexpr std::size_t S = num_slots<Rule>;

  struct Group {
    Config config;
    StorageOptions storage;
  };
  struct Tensor {
    DeviceView param;
    std::size_t group = 0;
    TensorShape shape;                // as the rules see it
    py::object key, state;            // state: the tensor's state dict, or None
    std::array<Buffer, S> slot{};     // existing state buffers (8-bit ones with their scales)
    float* master = nullptr;          // existing master copy (16-bit parameters, master_weights)
    TensorScalars scalars;
    const void* grad = nullptr;
    bool active = false;              // has a gradient this step
  };
  struct NewEntry {                   // state made by this step, inserted once all of it exists
    std::size_t tensor;
    py::object key, array;
  };

  std::vector<Group> groups_;
  std::vector<Tensor> tensors_;
  std::vector<TensorStep<Rule, float>> f32_;
  std::vector<TensorStep<Rule, double>> f64_;
  py::object params_key_ = py::str("params"), step_key_ = py::str("step"), master_key_ = py::str("master_param");

  static std::string idx(std::size_t i) { return std::to_string(i); }
  static std::string shape_str(const std::vector<py::ssize_t>& shape) {
    return py::repr(py::tuple(py::cast(shape))).cast<std::string>();
  }
  static std::string scale_name(std::size_t k) { return std::string(Rule::slots[k]) + "_scale"; }

  bool wants_master(const Tensor& t) const { return groups_[t.group].storage.master_weights && is_16bit(t.param.storage); }

  /// Slot k of tensor i as stored in its state dict `e`: the format the group's options give
  /// (slot_storage, as on the host), the parameter's shape, an 8-bit slot's scales beside it.
  template <class Add>
  void read_slot(Tensor& t, std::size_t k, std::size_t i, const py::dict& e, Add&& add) {
    const std::string what = "state[" + idx(i) + "]['" + Rule::slots[k] + "']";
    const std::string swhat = "state[" + idx(i) + "]['" + scale_name(k) + "']";
    const bool has_scales = e.contains(scale_name(k));
    if (!e.contains(Rule::slots[k])) {
      if (has_scales) throw scales_without_codes(swhat);
      return;
    }
    const StateDType requested = groups_[t.group].storage.state_dtype;
    const Storage expected = slot_storage(Rule::slot_kind(int(k)), requested, t.param.storage);
    DeviceView v = device_view(e[Rule::slots[k]], what, true, kAllStorages);
    const std::vector<py::ssize_t> dims = slot_dims<Rule>(t.param.shape, t.shape.rows, k);
    if (dims == t.param.shape && v.shape != dims)
      throw py::value_error(what + ": shape " + shape_str(v.shape) + " does not match the parameter's " +
                            shape_str(t.param.shape));
    if (v.shape != dims)  // a factored slot (Adafactor's row_var / col_var), as the host plan says it
      throw py::value_error(what + ": shape " + shape_str(v.shape) + " does not match " + shape_str(dims) +
                            ", its shape for a parameter of " + shape_str(t.param.shape));
    if (v.storage != expected) throw wrong_slot_storage(what, v.storage, expected, requested, t.param.storage);
    float* scale = nullptr;
    if (!is_8bit(v.storage)) {
      if (has_scales) throw scales_without_8bit(swhat, v.storage);
    } else {
      if (!has_scales) throw missing_scales(swhat);
      DeviceView sc = device_view(e[py::str(scale_name(k))], swhat, true, {Storage::Float32});
      if (sc.shape.size() != 1 || sc.shape[0] != scale_count(v.size))
        throw wrong_scales_shape(swhat, v.size, shape_str(sc.shape));
      scale = static_cast<float*>(sc.data);
      add(std::move(sc), swhat);
    }
    t.slot[k] = Buffer(v.data, v.storage, scale);
    add(std::move(v), what);
  }

  template <class C>
  TensorStep<Rule, C> tensor_step(Tensor& t, std::size_t i) {
    const Group& g = groups_[t.group];
    TensorStep<Rule, C> s;
    s.param = Buffer(t.param.data, t.param.storage);
    s.grad = Buffer(const_cast<void*>(t.grad), t.param.storage);
    s.size = t.param.size;
    s.rows = t.shape.rows;  // LARS' exclude_1d leaves vectors out, as on the host
    s.batch = t.shape.batch;
    s.config = &g.config;
    s.scalars = &t.scalars;
    s.rounding = {g.storage.stochastic_rounding, g.storage.seed, uint64_t(i)};  // the host's key
    s.slots = t.slot;
    s.master = wants_master(t) ? t.master : nullptr;
    return s;
  }

 public:
  void step(const py::object& groups, const py::object& state, const py::object& grads) override {
    if (placement(groups) == Placement::Host) throw WrongPlan{};
    if constexpr (!cuda::has_step<Rule>) throw cuda::cpu_only(Rule::name);
    if (!PyDict_Check(state.ptr())) throw py::type_error("state: expected a dict");
    if (!PyList_Check(grads.ptr()) && !PyTuple_Check(grads.ptr()))
      throw py::type_error("grads: expected a list with one array per parameter, got " +
                           py::str(py::type::handle_of(grads).attr("__name__")).cast<std::string>());
    py::dict sd = py::reinterpret_borrow<py::dict>(state);
    py::sequence gs = py::reinterpret_borrow<py::sequence>(grads);

    // 1. Checks; nothing is modified.
    groups_.clear();
    tensors_.clear();
    std::vector<Range> written, read;
    std::vector<std::intptr_t> streams;
    std::vector<std::pair<DeviceView, std::string>> located;  // every buffer, for the device check
    auto add_written = [&](DeviceView v, const std::string& what) {
      written.push_back(range_of(v, what));
      streams.push_back(v.stream);
      located.emplace_back(std::move(v), what);
    };
    py::list gl = py::reinterpret_borrow<py::list>(groups);
    for (std::size_t gi = 0; gi < gl.size(); ++gi) {
      const std::string where = "param_groups[" + idx(gi) + "]: ";
      py::dict d = py::reinterpret_borrow<py::dict>(gl[gi]);
      groups_.push_back({config_from_dict<Config>(group_fields(d, where, params_key_, nullptr), where),
                         storage_options(d, where)});
      for (py::handle p : py::reinterpret_borrow<py::list>(d[params_key_])) {
        const std::size_t i = tensors_.size();
        Tensor t;
        const std::string name = "params[" + idx(i) + "]";
        t.param = device_view(p, name, /*writeable=*/true, kParamStorages);
        if constexpr (Rule::matrix)  // before the state is made: its dtype is part of the check
          check_matrix_param<Rule>(name, t.param.shape.size(), t.param.storage, groups_[gi].storage.state_dtype);
        t.shape = shape_of(t.param.shape.data(), py::ssize_t(t.param.shape.size()), t.param.size);
        t.group = gi;
        t.key = py::int_(i);
        add_written(t.param, name);
        t.state = state_entry(sd, t.key, "state[" + idx(i) + "]");
        if (!t.state.is_none()) {
          py::dict e = py::reinterpret_borrow<py::dict>(t.state);
          for (std::size_t k = 0; k < S; ++k) read_slot(t, k, i, e, add_written);
          if (e.contains(master_key_)) {
            const std::string what = "state[" + idx(i) + "]['master_param']";
            if (!wants_master(t)) throw unwanted_master(what, name);
            DeviceView m = device_view(e[master_key_], what, true, {Storage::Float32});
            if (m.shape != t.param.shape)
              throw py::value_error(what + ": shape " + shape_str(m.shape) + " does not match the parameter's " +
                                    shape_str(t.param.shape));
            t.master = static_cast<float*>(m.data);
            add_written(std::move(m), what);
          }
          if (e.contains(step_key_)) t.scalars.step = step_value(e[step_key_], "state[" + idx(i) + "]['step']");
          for (std::size_t k = 0; k < Rule::scalars.size(); ++k)
            if (e.contains(Rule::scalars[k]))
              t.scalars.value[k] = scalar_value(e[Rule::scalars[k]], "state[" + idx(i) + "]['" + Rule::scalars[k] + "']");
        }
        tensors_.push_back(std::move(t));
      }
    }
    if (std::size_t(py::len(gs)) != tensors_.size())
      throw py::value_error("grads: expected " + idx(tensors_.size()) +
                            " gradients (one per parameter), got " + idx(py::len(gs)));
    std::vector<py::object> held;  // the gradients stay alive while the step runs without the GIL
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      py::object g = gs[i];
      if (g.is_none()) continue;
      held.push_back(g);
      const std::string what = "grads[" + idx(i) + "]", name = "params[" + idx(i) + "]";
      const DeviceView& p = tensors_[i].param;
      DeviceView v = device_view(g, what, false, kParamStorages);
      if (v.storage != p.storage)  // no conversion: a 16-bit gradient for a float32 parameter is an error
        throw py::type_error(what + ": dtype " + storage_name(v.storage) + " does not match " + name + "'s " +
                             storage_name(p.storage));
      if (v.shape != p.shape)
        throw py::value_error(what + ": shape " + shape_str(v.shape) + " does not match " + name + "'s " +
                              shape_str(p.shape));
      tensors_[i].grad = v.data;
      tensors_[i].active = true;
      read.push_back(range_of(v, what));
      streams.push_back(v.stream);
      located.emplace_back(std::move(v), what);
    }
    require_disjoint(written, read);

    // One device for everything (needs the driver: without CUDA this raises RuntimeError).
    cuda::require_device();
    int device = -1;
    std::string device_what;
    auto same_device = [&](const DeviceView& v, const std::string& what) {
      const int d = device_of(v, what);
      if (d < 0) return;
      if (device < 0) {
        device = d;
        device_what = what;
      } else if (d != device) {
        throw py::value_error(what + " is on CUDA device " + idx(d) + " but " + device_what +
                              " is on device " + idx(device) + ": one optimizer works on one device");
      }
    };
    for (const auto& [view, what] : located) same_device(view, what);
    if (device < 0) device = cuda::current_device();  // every buffer is empty
    cuda::DeviceGuard guard(device);
    std::sort(streams.begin(), streams.end());
    streams.erase(std::unique(streams.begin(), streams.end()), streams.end());
    // The legacy default stream (state creation, master copies, the step) after the producers' streams.
    for (std::intptr_t st : streams)
      if (st > 2) cuda::stream_wait(reinterpret_cast<void*>(st), nullptr);  // 1, 2: default streams

    // 2. State for tensors stepping for the first time, or slots switched on since, in the formats
    //    the group's options give (slot_storage, as on the host): allocated first, inserted once
    //    every allocation succeeded.
    std::vector<NewEntry> fresh;
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      Tensor& t = tensors_[i];
      if (!t.active) continue;
      const Group& g = groups_[t.group];
      for (std::size_t k = 0; k < S; ++k) {
        if (t.slot[k] || slot_elements<Rule>(g.config, int(k), t.shape) == 0) continue;
        const Storage storage = slot_storage(Rule::slot_kind(int(k)), g.storage.state_dtype, t.param.storage);
        DeviceArray scales;
        DeviceArray a = state_array(slot_dims<Rule>(t.param.shape, t.shape.rows, k), storage, Rule::slot_init(g.config, int(k)), device, &scales);
        t.slot[k] = Buffer(a.data(), storage, is_8bit(storage) ? static_cast<float*>(scales.data()) : nullptr);
        fresh.push_back({i, py::str(Rule::slots[k]), py::cast(std::move(a))});
        if (is_8bit(storage)) fresh.push_back({i, py::str(scale_name(k)), py::cast(std::move(scales))});
      }
      if (!t.master && wants_master(t)) {
        DeviceArray m = master_copy(t.param, device);
        t.master = static_cast<float*>(m.data());
        fresh.push_back({i, master_key_, py::cast(std::move(m))});
      }
    }
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      Tensor& t = tensors_[i];
      if (!t.active || !t.state.is_none()) continue;
      py::dict entry;
      entry[step_key_] = py::int_(0);
      for (std::size_t k = 0; k < Rule::scalars.size(); ++k) entry[Rule::scalars[k]] = py::float_(Rule::scalar_init(groups_[t.group].config, int(k)));
      sd[t.key] = entry;
      t.state = entry;
      t.scalars = TensorScalars{};
    }
    for (NewEntry& n : fresh) tensors_[n.tensor].state[n.key] = n.array;

    // 3. One launch per compute type on the legacy default stream.
    f32_.clear();
    f64_.clear();
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      Tensor& t = tensors_[i];
      if (!t.active) continue;
      if (t.param.storage == Storage::Float64) f64_.push_back(tensor_step<double>(t, i));
      else f32_.push_back(tensor_step<float>(t, i));  // float32 and 16-bit parameters compute in float
    }
    {
      py::gil_scoped_release release;
      cuda::step(f32_.data(), f32_.size(), nullptr);
      cuda::step(f64_.data(), f64_.size(), nullptr);
      for (std::intptr_t st : streams)  // and whatever the producers run next waits for the step
        if (st > 2) cuda::stream_wait(nullptr, reinterpret_cast<void*>(st));
    }

    // 4. Host scalars back into the state dicts.
    for (Tensor& t : tensors_) {
      if (!t.active) continue;
      t.state[step_key_] = py::int_(t.scalars.step);
      for (std::size_t k = 0; k < Rule::scalars.size(); ++k) t.state[Rule::scalars[k]] = py::float_(t.scalars.value[k]);
    }
  }
};

/// The bound object: the host plan, or the device plan when the parameters are device arrays.
/// A plan that finds parameters of the other kind throws WrongPlan before changing anything.
template <class Rule>
class PlanSwitch final : public StepPlanBase {
  StepPlan<Rule> host_;
  std::unique_ptr<DeviceStepPlan<Rule>> device_;
  bool on_device_ = false;
  std::atomic<bool> busy_{false};

  DeviceStepPlan<Rule>& device() {
    if (!device_) device_ = std::make_unique<DeviceStepPlan<Rule>>();
    return *device_;
  }

 public:
  void check(const py::object& groups, const py::object& state) override {
    try {
      StepPlan<Rule>().check(groups, state);
    } catch (const WrongPlan&) {
    }
  }

  void step(const py::object& groups, const py::object& state, const py::object& grads) override {
    // One step at a time: a second thread entering while the first runs without the GIL would
    // race on the cached plan and the state arrays.
    if (busy_.exchange(true))
      throw std::runtime_error("step(): this optimizer is already stepping in another thread; call step() from "
                               "one thread at a time (or hold a lock around it)");
    struct Release {
      std::atomic<bool>& busy;
      ~Release() { busy = false; }
    } release{busy_};
    if (!on_device_) {
      try {
        host_.step(groups, state, grads);
        return;
      } catch (const WrongPlan&) {
        on_device_ = true;
      }
      device().step(groups, state, grads);
    } else {
      try {
        device().step(groups, state, grads);
        return;
      } catch (const WrongPlan&) {
        on_device_ = false;
      }
      host_.step(groups, state, grads);
    }
  }
};

template <class Rule>
std::unique_ptr<StepPlanBase> make_plan() { return std::make_unique<PlanSwitch<Rule>>(); }

}  // namespace
}  // namespace dlopt::py_bindings
