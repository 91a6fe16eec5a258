#pragma once
// Shared by the CPU (models.cpp) and GPU (models_cuda.cpp) bindings of the linear models.

#include <pybind11/pybind11.h>

#include <string>

#include "dlopt/models/linear.hpp"

namespace dlopt::py_bindings {

namespace py = pybind11;

/// "squared_error" / "logistic" / "softmax"; ValueError otherwise.
Objective parse_objective(const std::string& name);

/// The estimator's config dict as a TrainConfig; errors name the key.
TrainConfig config_from_dict(const py::dict& d);

/// A Python callback(epoch, loss, validation_score) -> bool as an EpochCallback that takes the GIL;
/// empty for None. The callback object must outlive the returned function.
EpochCallback epoch_callback(const py::object& callback);

}  // namespace dlopt::py_bindings
