#pragma once
// Shared by the CPU (models.cpp) and GPU (models_cuda.cpp) bindings of the linear models.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "dlopt/models/linear.hpp"

namespace dlopt::py_bindings {

namespace py = pybind11;

/// "squared_error" / "logistic" / "softmax"; ValueError otherwise.
Objective parse_objective(const std::string& name);

/// The estimator's config dict as a TrainConfig; errors name the key.
TrainConfig config_from_dict(const py::dict& d);

/// What the CPU (models.cpp: LinearModel) and GPU (models_cuda.cpp: cuda::LinearTrainer) bindings
/// share: the trainer in float or double, and the calls that only forward to it (bound on each
/// class by bind_trainer_calls).
template <template <class> class Trainer>
class TrainerHolder {
 public:
  template <class F>
  decltype(auto) visit(F&& f) {
    return std::visit([&](auto& m) -> decltype(auto) { return f(*m); }, model_);
  }
  void set_config(const py::dict& config) {
    const TrainConfig cfg = config_from_dict(config);
    visit([&](auto& m) { m.config() = cfg; return 0; });
  }
  void reset_optimizer() { visit([](auto& m) { m.reset_optimizer(); return 0; }); }
  std::vector<double> loss_curve() { return visit([](auto& m) { return m.loss_curve(); }); }
  std::vector<double> lr_curve() { return visit([](auto& m) { return m.lr_curve(); }); }
  std::vector<double> validation_scores() { return visit([](auto& m) { return m.validation_scores(); }); }
  int64_t steps() { return visit([](auto& m) { return m.steps(); }); }

 protected:
  std::variant<std::unique_ptr<Trainer<float>>, std::unique_ptr<Trainer<double>>> model_;
};

/// TrainerHolder's forwarding calls on the bound class.
template <class Py>
void bind_trainer_calls(py::class_<Py>& c) {
  c.def("set_config", &Py::set_config, py::arg("config"))
      .def("reset_optimizer", &Py::reset_optimizer)
      .def_property_readonly("loss_curve", &Py::loss_curve)
      .def_property_readonly("lr_curve", &Py::lr_curve)
      .def_property_readonly("validation_scores", &Py::validation_scores)
      .def_property_readonly("steps", &Py::steps);
}

/// A Python callback(epoch, loss, validation_score) -> bool as an EpochCallback that takes the GIL;
/// empty for None. The callback object must outlive the returned function.
EpochCallback epoch_callback(const py::object& callback);

}  // namespace dlopt::py_bindings
