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

template <class Rule>
class DeviceStepPlan final : public StepPlanBase {
 public:
  void check(const py::object&, const py::object&) override {}

 private:
  using Config = typename Rule::Config;
  static constexpr std::size_t S = num_slots<Rule>;

  struct Tensor {
    DeviceView param;
    std::size_t group = 0;
    py::object key, state;            // state: the tensor's state dict, or None
    std::array<void*, S + 1> slot{};  // existing state buffers
    TensorScalars scalars;
    const void* grad = nullptr;
    bool active = false;              // has a gradient this step
  };
  struct NewSlot {
    std::size_t tensor, k;
    py::object array;
  };

  std::vector<Config> configs_;
  std::vector<Tensor> tensors_;
  std::vector<TensorStep<Rule, float>> f32_;
  std::vector<TensorStep<Rule, double>> f64_;
  py::object params_key_ = py::str("params"), step_key_ = py::str("step");

  static std::string idx(std::size_t i) { return std::to_string(i); }

  static void require_like(const DeviceView& v, const DeviceView& like, const std::string& what,
                           const std::string& like_what) {
    if (v.dtype != like.dtype)
      throw py::type_error(what + ": dtype " + dtype_name(v.dtype) + " does not match " + like_what +
                           "'s " + dtype_name(like.dtype));
    if (v.shape != like.shape)
      throw py::value_error(what + ": shape " + py::repr(py::cast(v.shape)).cast<std::string>() +
                            " does not match " + like_what + "'s " +
                            py::repr(py::cast(like.shape)).cast<std::string>());
  }

  template <class T>
  TensorStep<Rule, T> tensor_step(Tensor& t) {
    TensorStep<Rule, T> s;
    s.param = static_cast<T*>(t.param.data);
    s.grad = static_cast<const T*>(t.grad);
    s.size = t.param.size;
    const TensorShape shape = shape_of(t.param.shape.data(), py::ssize_t(t.param.shape.size()), t.param.size);
    s.rows = shape.rows;  // LARS' exclude_1d leaves vectors out, as on the host
    s.batch = shape.batch;
    s.config = &configs_[t.group];
    s.scalars = &t.scalars;
    for (std::size_t k = 0; k < S; ++k)  // only the slots the rule uses: no traffic for the others
      s.slots[k] = Rule::uses_slot(configs_[t.group], int(k)) ? static_cast<T*>(t.slot[k]) : nullptr;
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
    configs_.clear();
    tensors_.clear();
    std::vector<Range> written, read;
    std::vector<std::intptr_t> streams;
    std::vector<std::pair<DeviceView, std::string>> located;  // every buffer, for the device check
    py::list gl = py::reinterpret_borrow<py::list>(groups);
    for (std::size_t gi = 0; gi < gl.size(); ++gi) {
      const std::string where = "param_groups[" + idx(gi) + "]: ";
      py::dict d = py::reinterpret_borrow<py::dict>(gl[gi]);
      configs_.push_back(config_from_dict<Config>(group_fields(d, where, params_key_, nullptr), where));
      const StorageOptions options = storage_options(d, where);
      for (py::handle p : py::reinterpret_borrow<py::list>(d[params_key_])) {
        const std::size_t i = tensors_.size();
        Tensor t;
        const std::string name = "params[" + idx(i) + "]";
        t.param = device_view(p, name, /*writeable=*/true);
        cuda::require_native_state(where, options.state_dtype,
                                   t.param.dtype == DType::Float64 ? Storage::Float64 : Storage::Float32);
        t.group = gi;
        t.key = py::int_(i);
        written.push_back(range_of(t.param, name));
        streams.push_back(t.param.stream);
        located.emplace_back(t.param, name);
        t.state = state_entry(sd, t.key, "state[" + idx(i) + "]");
        if (!t.state.is_none()) {
          py::dict e = py::reinterpret_borrow<py::dict>(t.state);
          for (std::size_t k = 0; k < S; ++k) {
            if (!e.contains(Rule::slots[k])) continue;
            const std::string what = "state[" + idx(i) + "]['" + Rule::slots[k] + "']";
            DeviceView v = device_view(e[Rule::slots[k]], what, true);
            require_like(v, t.param, what, name);
            t.slot[k] = v.data;
            written.push_back(range_of(v, what));
            streams.push_back(v.stream);
            located.emplace_back(std::move(v), what);
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
      const std::string what = "grads[" + idx(i) + "]";
      DeviceView v = device_view(g, what, false);
      require_like(v, tensors_[i].param, what, "params[" + idx(i) + "]");
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

    // 2. State for tensors stepping for the first time, or slots switched on since (allocated
    //    first, inserted once every allocation succeeded).
    std::vector<NewSlot> fresh;
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      Tensor& t = tensors_[i];
      if (!t.active) continue;
      const Config& config = configs_[t.group];
      for (std::size_t k = 0; k < S; ++k) {
        if (t.slot[k] || !Rule::uses_slot(config, int(k))) continue;
        DeviceArray a = DeviceArray::empty(t.param.shape, t.param.dtype, device);
        fill(a, Rule::slot_init(config, int(k)));
        t.slot[k] = a.data();
        fresh.push_back({i, k, py::cast(std::move(a))});
      }
    }
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      Tensor& t = tensors_[i];
      if (!t.active || !t.state.is_none()) continue;
      py::dict entry;
      entry[step_key_] = py::int_(0);
      for (std::size_t k = 0; k < Rule::scalars.size(); ++k) entry[Rule::scalars[k]] = py::float_(Rule::scalar_init(configs_[t.group], int(k)));
      sd[t.key] = entry;
      t.state = entry;
      t.scalars = TensorScalars{};
    }
    for (NewSlot& n : fresh) tensors_[n.tensor].state[py::str(Rule::slots[n.k])] = n.array;

    // 3. One launch per dtype on the legacy default stream, after the producers' streams.
    f32_.clear();
    f64_.clear();
    for (Tensor& t : tensors_) {
      if (!t.active) continue;
      if (t.param.dtype == DType::Float32) f32_.push_back(tensor_step<float>(t));
      else f64_.push_back(tensor_step<double>(t));
    }
    std::sort(streams.begin(), streams.end());
    streams.erase(std::unique(streams.begin(), streams.end()), streams.end());
    {
      py::gil_scoped_release release;
      for (std::intptr_t st : streams)
        if (st > 2) cuda::stream_wait(reinterpret_cast<void*>(st), nullptr);  // 1, 2: default streams
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
