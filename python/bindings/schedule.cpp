// Python face of the closed-form schedules of dlopt/schedule.hpp: dlopt.lr_scheduler computes
// every closed form (torch's _get_closed_form_lr, warmup-stable-decay, one-cycle's phases and
// anneal) through these, so each formula is written once, in C++.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "dlopt/schedule.hpp"

namespace dlopt::py_bindings {

namespace py = pybind11;

namespace {

// The keyword `key` of a closed-form call (always given by dlopt.lr_scheduler).
template <class T>
T arg(const py::kwargs& kw, const char* key) {
  if (!kw.contains(key)) throw py::type_error(std::string("schedule_lr: missing keyword '") + key + "'");
  py::object v = kw[key];
  if constexpr (std::is_same_v<T, int64_t>) {
    // torch accepts a whole float where it documents an int (T_max=10.0): so does the closed form
    if (py::isinstance<py::float_>(v)) {
      const double d = v.cast<double>();
      if (d != std::floor(d) || !std::isfinite(d))
        throw py::value_error(std::string(key) + ": expected a whole number, got " + py::repr(v).cast<std::string>());
      return int64_t(d);
    }
  }
  return v.cast<T>();
}

WarmupStableDecay::Decay decay_of(const std::string& name) {
  if (name == "linear") return WarmupStableDecay::Decay::Linear;
  if (name == "cosine") return WarmupStableDecay::Decay::Cosine;
  if (name == "sqrt") return WarmupStableDecay::Decay::Sqrt;
  throw py::value_error("decay: expected one of ('linear', 'cosine', 'sqrt'), got '" + name + "'");
}

double schedule_lr(const std::string& kind, double base_lr, int64_t t, const py::kwargs& kw) {
  if (kind == "constant_factor")
    return ConstantFactor{base_lr, arg<double>(kw, "factor"), arg<int64_t>(kw, "total_iters")}.lr(t);
  if (kind == "step")
    return StepDecay{base_lr, arg<int64_t>(kw, "step_size"), arg<double>(kw, "gamma")}.lr(t);
  if (kind == "multistep")
    return MultiStepDecay{base_lr, arg<std::vector<int64_t>>(kw, "milestones"),
                          arg<double>(kw, "gamma")}.lr(t);
  if (kind == "exponential") return ExponentialDecay{base_lr, arg<double>(kw, "gamma")}.lr(t);
  if (kind == "linear")
    return LinearWarmup{base_lr, arg<double>(kw, "start_factor"), arg<double>(kw, "end_factor"),
                        arg<int64_t>(kw, "total_iters")}.lr(t);
  if (kind == "polynomial")
    return PolynomialDecay{base_lr, arg<int64_t>(kw, "total_iters"), arg<double>(kw, "power")}.lr(t);
  if (kind == "cosine")
    return CosineAnnealing{base_lr, arg<int64_t>(kw, "T_max"), arg<double>(kw, "eta_min")}.lr(t);
  if (kind == "wsd")
    return WarmupStableDecay{base_lr, arg<int64_t>(kw, "warmup_steps"), arg<int64_t>(kw, "stable_steps"),
                             arg<int64_t>(kw, "decay_steps"), arg<double>(kw, "final_lr_factor"),
                             arg<double>(kw, "warmup_start_factor"),
                             decay_of(arg<std::string>(kw, "decay"))}.lr(t);
  throw py::value_error("schedule_lr: unknown schedule '" + kind + "'");
}

}  // namespace

void bind_schedule(py::module_& m) {
  m.def("schedule_lr", &schedule_lr, py::arg("kind"), py::arg("base_lr"), py::arg("t"),
        "lr at step t of a closed-form schedule of dlopt/schedule.hpp, its fields as keywords: "
        "'constant_factor' (ConstantFactor), 'step', 'multistep', 'exponential', 'linear', "
        "'polynomial', 'cosine', 'wsd' (WarmupStableDecay).");
  m.def("one_cycle_phases", [](int64_t total_steps, double pct_start, bool three_phase) {
    double ends[3];
    const int n = OneCycle::phase_ends(total_steps, pct_start, three_phase, ends);
    return std::vector<double>(ends, ends + n);
  }, py::arg("total_steps"), py::arg("pct_start"), py::arg("three_phase"),
  "The step at which each phase of OneCycle ends (2 phases, or 3 with three_phase).");
  m.def("one_cycle_locate", [](int64_t t, const std::vector<double>& ends) {
    if (ends.empty()) throw py::value_error("one_cycle_locate: no phases");
    return OneCycle::locate(t, ends.data(), int(ends.size()));
  }, py::arg("t"), py::arg("ends"),
  "(phase, fraction of it done) at step t: the first phase ending at or after t, else the last.");
  m.def("one_cycle_anneal", &OneCycle::anneal, py::arg("cosine"), py::arg("start"), py::arg("end"),
        py::arg("pct"), "OneCycle's anneal from start to end at fraction pct (cosine or linear).");
}

}  // namespace dlopt::py_bindings
