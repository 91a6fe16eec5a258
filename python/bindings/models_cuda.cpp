// _core.CudaLinearModel: dlopt::cuda::LinearTrainer over device arrays (__cuda_array_interface__):
// coef (K, d) and intercept (K,) are updated in place on the GPU, X / y / sample_weight are read in
// place. The Python estimators (device="cuda") copy NumPy inputs to the device before calling it.

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <variant>

#include "device.hpp"
#include "models.hpp"
#include "dlopt/cuda/linear.hpp"
#include "dlopt/cuda/memory.hpp"

namespace dlopt::py_bindings {

namespace {

class PyCudaLinearModel final : public TrainerHolder<cuda::LinearTrainer> {
 public:
  PyCudaLinearModel(const std::string& objective, const py::object& coef, const py::object& intercept,
                    const py::dict& config)
      : coef_obj_(coef), intercept_obj_(intercept) {
    const DeviceView c = device_view(coef, "coef", true), b = device_view(intercept, "intercept", true);
    if (c.shape.size() != 2) throw py::value_error("coef: expected a 2-D array (n_outputs, n_features)");
    if (b.storage != c.storage) throw py::type_error("intercept: dtype must match coef's");
    const int64_t K = c.shape[0], d = c.shape[1];
    if (b.shape.size() != 1 || b.shape[0] != K)
      throw py::value_error("intercept: expected shape (" + std::to_string(K) + ",)");
    device_ = device_of(c, "coef");
    if (device_of(b, "intercept") != device_) throw py::value_error("intercept: on another device than coef");
    dtype_ = c.storage;
    const Objective obj = parse_objective(objective);
    const TrainConfig cfg = config_from_dict(config);
    if (c.storage == Storage::Float32)
      model_ = std::make_unique<cuda::LinearTrainer<float>>(obj, d, K, static_cast<float*>(c.data),
                                                            static_cast<float*>(b.data), cfg);
    else
      model_ = std::make_unique<cuda::LinearTrainer<double>>(obj, d, K, static_cast<double*>(c.data),
                                                             static_cast<double*>(b.data), cfg);
  }

  /// X (n, d), y (n,), sample_weight (n,) | None: device arrays of the model's dtype and device.
  template <class T>
  DataView<T> view(const py::handle& X, const py::handle& y, const py::handle& sw, int64_t d) {
    const DeviceView x = device_view(X, "X", false);
    if (x.storage != dtype_) throw py::type_error("X: dtype does not match the model's");
    if (x.shape.size() != 2 || x.shape[1] != d)
      throw py::value_error("X: expected shape (n_samples, " + std::to_string(d) + ")");
    const int64_t n = x.shape[0];
    auto vector = [&](const py::handle& obj, const char* what) -> const T* {
      const DeviceView v = device_view(obj, what, false);
      if (v.storage != dtype_ || v.shape.size() != 1 || v.shape[0] != n)
        throw py::value_error(std::string(what) + ": expected a 1-D array of shape (" + std::to_string(n) +
                              ",) and the model's dtype");
      if (v.size > 0 && device_of(v, what) != device_) throw py::value_error(std::string(what) + ": on another device");
      return static_cast<const T*>(v.data);
    };
    if (n > 0 && device_of(x, "X") != device_) throw py::value_error("X: on another device than the model");
    return {static_cast<const T*>(x.data), n, d, vector(y, "y"), sw.is_none() ? nullptr : vector(sw, "sample_weight")};
  }

  int64_t fit(const py::handle& X, const py::handle& y, const py::handle& sw, const py::object& callback) {
    return visit([&](auto& m) {
      using T = typename std::remove_reference_t<decltype(m)>::Scalar;
      const DataView<T> data = view<T>(X, y, sw, m.n_features());
      const EpochCallback cb = epoch_callback(callback);
      cuda::DeviceGuard guard(device_);
      py::gil_scoped_release release;
      return m.fit(data, cb);
    });
  }

  void partial_fit(const py::handle& X, const py::handle& y, const py::handle& sw) {
    visit([&](auto& m) {
      using T = typename std::remove_reference_t<decltype(m)>::Scalar;
      const DataView<T> data = view<T>(X, y, sw, m.n_features());
      cuda::DeviceGuard guard(device_);
      py::gil_scoped_release release;
      m.partial_fit(data);
      return 0;
    });
  }

  double loss(const py::handle& X, const py::handle& y, const py::handle& sw) {
    return visit([&](auto& m) {
      using T = typename std::remove_reference_t<decltype(m)>::Scalar;
      const DataView<T> data = view<T>(X, y, sw, m.n_features());
      cuda::DeviceGuard guard(device_);
      py::gil_scoped_release release;
      return m.loss(data);
    });
  }

 private:
  py::object coef_obj_, intercept_obj_;  // keep the parameter buffers alive as long as the model
  int device_ = 0;
  Storage dtype_ = Storage::Float32;
};

}  // namespace

void bind_models_cuda(py::module_& m) {
  py::class_<PyCudaLinearModel> model(m, "CudaLinearModel",
                                      "A linear model trained on the GPU over device coef (K, d) and intercept "
                                      "(K,) arrays, updated in place. Use dlopt.linear_model with device='cuda' "
                                      "instead.");
  model
      .def(py::init<const std::string&, const py::object&, const py::object&, const py::dict&>(),
           py::arg("objective"), py::arg("coef"), py::arg("intercept"), py::arg("config"))
      .def("fit", &PyCudaLinearModel::fit, py::arg("X"), py::arg("y"), py::arg("sample_weight") = py::none(),
           py::arg("callback") = py::none())
      .def("partial_fit", &PyCudaLinearModel::partial_fit, py::arg("X"), py::arg("y"),
           py::arg("sample_weight") = py::none())
      .def("loss", &PyCudaLinearModel::loss, py::arg("X"), py::arg("y"), py::arg("sample_weight") = py::none());
  bind_trainer_calls(model);
}

}  // namespace dlopt::py_bindings
