// Python face of the linear models: _core.LinearModel over NumPy buffers owned by the Python
// estimator (coef and intercept are updated in place), and _core.solve_least_squares.
// X is read in place (C-contiguous float32/float64 with the parameters' dtype, never converted);
// fit runs with the GIL released, taking it back only to call a Python epoch callback.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "arrays.hpp"
#include "models.hpp"
#include "optim_fields.hpp"
#include "dlopt/cuda/linear.hpp"
#include "dlopt/models/linear.hpp"

namespace dlopt::py_bindings {

Objective parse_objective(const std::string& name) {
  if (name == "squared_error") return Objective::SquaredError;
  if (name == "logistic") return Objective::Logistic;
  if (name == "softmax") return Objective::Softmax;
  throw py::value_error("objective: expected 'squared_error', 'logistic' or 'softmax', got '" + name + "'");
}

namespace {

/// An integer hyperparameter (an int or a NumPy integer, not a bool, a float or an array): ValueError
/// in TrainConfig::validate's style otherwise.
int64_t integer(const py::handle& v, const std::string& key) {
  const auto refuse = [&] {
    return py::value_error("Invalid " + key + ": " + py::repr(v).cast<std::string>() + " (must be an int)");
  };
  if (py::isinstance<py::bool_>(v) || !PyIndex_Check(v.ptr())) throw refuse();
  const py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(v.ptr()));
  const long long x = index ? PyLong_AsLongLong(index.ptr()) : -1;
  if (PyErr_Occurred()) {  // an array of several values; an int past 64 bits
    PyErr_Clear();
    throw refuse();
  }
  return x;
}

/// lr_schedule=: None, a name, or {"name": ..., **arguments}; types are checked here, names and values
/// in C++ (make_schedule). Every error is a ValueError naming the key.
ScheduleSpec schedule_from(const py::handle& v) {
  ScheduleSpec s;
  if (v.is_none()) return s;
  if (py::isinstance<py::str>(v)) {
    s.name = v.cast<std::string>();
    return s;
  }
  if (!py::isinstance<py::dict>(v))
    throw py::value_error("Invalid lr_schedule: expected None, a schedule name or a dict with a 'name' key, got " +
                          py::repr(v).cast<std::string>());
  const py::dict d = py::reinterpret_borrow<py::dict>(v);
  if (!d.contains("name")) throw py::value_error("Invalid lr_schedule: the dict needs a 'name' key");
  for (auto item : d) {
    if (!py::isinstance<py::str>(item.first))
      throw py::value_error("Invalid lr_schedule: keys must be strings, got " +
                            py::repr(item.first).cast<std::string>());
    const std::string key = py::str(item.first);
    py::handle x = item.second;
    const std::string where = "Invalid lr_schedule['" + key + "']: ";
    if (key == "name") {
      if (!py::isinstance<py::str>(x))
        throw py::value_error(where + "expected a schedule name, got " + py::repr(x).cast<std::string>());
      s.name = x.cast<std::string>();
    } else if (key == "milestones") {
      if (py::isinstance<py::str>(x) || !py::isinstance<py::sequence>(x))
        throw py::value_error(where + "expected a list of epoch indices, got " + py::repr(x).cast<std::string>());
      for (auto e : x.cast<py::sequence>()) {
        s.milestones.push_back(integer(e, "lr_schedule['milestones']"));
      }
      s.has_milestones = true;
    } else if (py::isinstance<py::str>(x)) {
      s.options[key] = x.cast<std::string>();
    } else if (py::isinstance<py::bool_>(x)) {
      s.params[key] = x.cast<bool>() ? 1.0 : 0.0;
    } else if (PyNumber_Check(x.ptr()) && !py::isinstance<py::sequence>(x)) {
      s.params[key] = number_value(x, "lr_schedule['" + key + "']");
    } else {
      throw py::value_error(where + "expected a number or a string, got " + py::repr(x).cast<std::string>());
    }
  }
  return s;
}

/// A name (optimizer, penalty): TypeError for anything but a str (None, "none", where `none` allows it).
std::string name_value(const py::handle& v, const std::string& key, const char* expected, bool none) {
  if (none && v.is_none()) return "none";
  if (!py::isinstance<py::str>(v))
    throw py::type_error(key + ": expected " + expected + ", got " + py::repr(v).cast<std::string>());
  return v.cast<std::string>();
}

}  // namespace

EpochCallback epoch_callback(const py::object& callback) {
  if (callback.is_none()) return {};
  return [&callback](const EpochInfo& e) {
    py::gil_scoped_acquire gil;
    return py::bool_(callback(e.epoch, e.loss, e.validation_score)).cast<bool>();
  };
}


TrainConfig config_from_dict(const py::dict& d) {
  TrainConfig c;
  for (auto item : d) {
    const std::string key = py::str(item.first);
    py::handle v = item.second;
    if (key == "optimizer") c.optimizer = name_value(v, key, "a name such as 'adam'", false);
    else if (key == "lr") c.lr = number_value(v, key);
    else if (key == "lr_schedule") c.lr_schedule = schedule_from(v);
    else if (key == "optimizer_params") {
      const py::dict params = v.cast<py::dict>();
      c.optimizer_storage = storage_options(params, "optimizer_params: ");
      for (auto kv : params) {
        const std::string k = py::str(kv.first);
        if (is_storage_key(k)) continue;
        c.optimizer_params[k] = py::isinstance<py::bool_>(kv.second) ? double(kv.second.cast<bool>())
                                                                    : number_value(kv.second, k);
      }
    } else if (key == "epochs") c.epochs = integer(v, key);
    else if (key == "batch_size") {  // None is full batch, the TrainConfig's 0: a 0 from Python is an error
      c.batch_size = v.is_none() ? 0 : integer(v, key);
      if (!v.is_none() && c.batch_size < 1)
        throw py::value_error("Invalid batch_size: " + std::to_string(c.batch_size) +
                              " (must be >= 1, or None for full batch)");
    } else if (key == "shuffle") c.shuffle = v.cast<bool>();
    else if (key == "shuffle_block") c.shuffle_block = integer(v, key);
    else if (key == "seed") c.seed = v.cast<uint64_t>();
    else if (key == "fit_intercept") c.fit_intercept = v.cast<bool>();
    else if (key == "penalty") c.penalty = parse_penalty(name_value(v, key, "None, 'l2', 'l1' or 'elasticnet'", true));
    else if (key == "alpha") c.alpha = number_value(v, key);
    else if (key == "l1_ratio") c.l1_ratio = number_value(v, key);
    else if (key == "tol") {  // None disables the plateau rule (the TrainConfig's NaN); a NaN from Python is an error
      c.tol = v.is_none() ? std::numeric_limits<double>::quiet_NaN() : number_value(v, key);
      if (!v.is_none() && std::isnan(c.tol)) throw py::value_error("Invalid tol: nan (must be >= 0, or None to disable)");
    }
    else if (key == "n_iter_no_change") c.n_iter_no_change = integer(v, key);
    else if (key == "early_stopping") c.early_stopping = v.cast<bool>();
    else if (key == "validation_fraction") c.validation_fraction = number_value(v, key);
    else if (key == "batches") c.batches = v.is_none() ? 0 : integer(v, key);
    else throw py::type_error("config: unknown key '" + key + "'");
  }
  c.validate();
  return c;
}

namespace {

/// Arrays of one call, kept alive while C++ reads them.
struct Inputs {
  py::array X, y, sw;
};

/// X (n × d), y (n,) and sample_weight (n,) | None, all with dtype T, as a DataView.
template <class T>
DataView<T> data_view(Inputs& in, const py::handle& X, const py::handle& y, const py::handle& sw,
                      int64_t n_features) {
  const DType want = std::is_same_v<T, float> ? DType::Float32 : DType::Float64;
  in.X = checked_array(X, "X", false);
  if (dtype_of(in.X) != want)
    throw py::type_error(std::string("X: dtype ") + dtype_name(dtype_of(in.X)) +
                         " does not match the model's " + dtype_name(want));
  if (in.X.ndim() != 2)
    throw py::value_error("X: expected a 2-D array, got " + std::to_string(in.X.ndim()) + "-D");
  const int64_t n = in.X.shape(0);
  if (in.X.shape(1) != n_features)
    throw py::value_error("X has " + std::to_string(in.X.shape(1)) + " features, but the model is expecting " +
                          std::to_string(n_features) + " features as input");
  DataView<T> d{static_cast<const T*>(in.X.data()), n, n_features, nullptr, nullptr};
  if (!y.is_none()) {
    in.y = checked_array(y, "y", false);
    if (dtype_of(in.y) != want || in.y.ndim() != 1 || in.y.shape(0) != n)
      throw py::value_error("y: expected a " + std::string(dtype_name(want)) + " array of shape (" +
                            std::to_string(n) + ",)");
    d.y = static_cast<const T*>(in.y.data());
  }
  if (!sw.is_none()) {
    in.sw = checked_array(sw, "sample_weight", false);
    if (dtype_of(in.sw) != want || in.sw.ndim() != 1 || in.sw.shape(0) != n)
      throw py::value_error("sample_weight: expected a " + std::string(dtype_name(want)) +
                            " array of shape (" + std::to_string(n) + ",)");
    d.sample_weight = static_cast<const T*>(in.sw.data());
  }
  return d;
}

/// Training reads the data while it writes coef and intercept: they must not share memory.
void require_apart(const Inputs& in, const py::array& coef, const py::array& intercept) {
  require_disjoint({range_of(coef, "coef"), range_of(intercept, "intercept")},
                   {range_of(in.X, "X"), range_of(in.y, "y"), range_of(in.sw, "sample_weight")});
}

class PyLinearModel final : public TrainerHolder<LinearModel> {
 public:
  PyLinearModel(const std::string& objective, const py::handle& coef, const py::handle& intercept,
                const py::dict& config) {
    coef_ = checked_array(coef, "coef", true);
    intercept_ = checked_array(intercept, "intercept", true);
    if (coef_.ndim() != 2) throw py::value_error("coef: expected a 2-D array (n_outputs, n_features)");
    if (dtype_of(intercept_) != dtype_of(coef_)) throw py::type_error("intercept: dtype must match coef's");
    const int64_t K = coef_.shape(0), d = coef_.shape(1);
    if (intercept_.ndim() != 1 || intercept_.shape(0) != K)
      throw py::value_error("intercept: expected shape (" + std::to_string(K) + ",)");
    require_disjoint({range_of(coef_, "coef"), range_of(intercept_, "intercept")}, {});
    const Objective obj = parse_objective(objective);
    const TrainConfig cfg = config_from_dict(config);
    if (dtype_of(coef_) == DType::Float32)
      model_ = std::make_unique<LinearModel<float>>(obj, d, K, static_cast<float*>(coef_.mutable_data()),
                                                    static_cast<float*>(intercept_.mutable_data()), cfg);
    else
      model_ = std::make_unique<LinearModel<double>>(obj, d, K, static_cast<double*>(coef_.mutable_data()),
                                                     static_cast<double*>(intercept_.mutable_data()), cfg);
  }

  int64_t fit(const py::handle& X, const py::handle& y, const py::handle& sw, const py::object& callback) {
    return visit([&](auto& m) {
      using T = typename std::remove_reference_t<decltype(m)>::Scalar;
      Inputs in;
      const DataView<T> d = data_view<T>(in, X, y, sw, m.n_features());
      if (!d.y) throw py::value_error("y: required");
      require_apart(in, coef_, intercept_);
      const EpochCallback cb = epoch_callback(callback);
      py::gil_scoped_release release;
      return m.fit(d, cb);
    });
  }

  void partial_fit(const py::handle& X, const py::handle& y, const py::handle& sw) {
    visit([&](auto& m) {
      using T = typename std::remove_reference_t<decltype(m)>::Scalar;
      Inputs in;
      const DataView<T> d = data_view<T>(in, X, y, sw, m.n_features());
      if (!d.y) throw py::value_error("y: required");
      require_apart(in, coef_, intercept_);
      py::gil_scoped_release release;
      m.partial_fit(d);
      return 0;
    });
  }

  double loss(const py::handle& X, const py::handle& y, const py::handle& sw) {
    return visit([&](auto& m) {
      using T = typename std::remove_reference_t<decltype(m)>::Scalar;
      Inputs in;
      const DataView<T> d = data_view<T>(in, X, y, sw, m.n_features());
      if (!d.y) throw py::value_error("y: required");
      py::gil_scoped_release release;
      return m.loss(d);
    });
  }

  py::array decision_function(const py::handle& X) {
    return visit([&](auto& m) -> py::array {
      using T = typename std::remove_reference_t<decltype(m)>::Scalar;
      Inputs in;
      const DataView<T> d = data_view<T>(in, X, py::none(), py::none(), m.n_features());
      py::array_t<T> out({d.n_samples, m.n_outputs()});
      T* o = out.mutable_data();
      {
        py::gil_scoped_release release;
        m.decision_function(d.X, d.n_samples, o);
      }
      return std::move(out);
    });
  }

  /// Data-parallel training (dlopt.distributed): fn(grad, sums) is called before every step with
  /// NumPy views of the batch's summed gradient and [loss, weight] sums, and replaces them in place by
  /// the sums over every worker. None removes it.
  void set_batch_reducer(const py::object& fn) {
    reducer_ = fn;
    visit([&](auto& m) {
      using T = typename std::remove_reference_t<decltype(m)>::Scalar;
      if (fn.is_none()) {
        m.set_batch_reducer({});
        return 0;
      }
      const py::object* f = &reducer_;  // owned by this object, which owns the model
      m.set_batch_reducer([f](T* grad, int64_t n, double* sums) {
        py::gil_scoped_acquire gil;
        // views, no copy: the callable writes the global sums into the C++ buffers
        py::array_t<T> g({n}, {py::ssize_t(sizeof(T))}, grad, py::none());
        py::array_t<double> s({int64_t(2)}, {py::ssize_t(sizeof(double))}, sums, py::none());
        (*f)(g, s);
      });
      return 0;
    });
  }
 private:
  py::array coef_, intercept_;  // keep the parameter buffers alive as long as the model
  py::object reducer_ = py::none();
};

template <class T>
bool least_squares(const py::handle& X, const py::handle& y, const py::handle& sw, bool fit_intercept,
                   double alpha, py::array coef, py::array intercept) {
  Inputs in;
  const DataView<T> d = data_view<T>(in, X, y, sw, coef.size());
  if (!d.y) throw py::value_error("y: required");
  require_apart(in, coef, intercept);
  LeastSquaresConfig cfg{fit_intercept, alpha};
  T* c = static_cast<T*>(coef.mutable_data());
  T* b = static_cast<T*>(intercept.mutable_data());
  py::gil_scoped_release release;
  return solve_least_squares(d, cfg, c, b);
}

}  // namespace

void bind_models(py::module_& m) {
  m.def("schedule_lrs", [](const py::handle& spec, double base_lr, int64_t steps) {
    const ScheduleFn f = make_schedule(schedule_from(spec), base_lr, steps);
    std::vector<double> out;
    for (int64_t t = 0; t < steps; ++t) out.push_back(f(t));
    return out;
  }, py::arg("spec"), py::arg("base_lr"), py::arg("steps"),
  "lr(t) for t = 0..steps-1 of the closed-form C++ schedule that lr_schedule=spec names (dlopt/schedule.hpp).");

  m.def("check_train_config", [](const py::dict& config, const std::string& device, const std::string& dtype) {
    const TrainConfig c = config_from_dict(config);
    if (device == "cuda") {
      if (dtype == "float32") cuda::check_config<float>(c);
      else if (dtype == "float64") cuda::check_config<double>(c);
      else throw py::type_error("dtype: expected 'float32' or 'float64', got '" + dtype + "'");
    } else if (device != "cpu") {
      throw py::value_error("device: expected 'cpu' or 'cuda', got '" + device + "'");
    }
  }, py::arg("config"), py::arg("device") = "cpu", py::arg("dtype") = "float64",
        "The linear models' hyperparameter checks (TrainConfig::validate and the conversion of each key; "
        "with device='cuda', also what the GPU trainer cannot run, cuda::check_config): ValueError / "
        "TypeError naming the key, as a trainer built with this config would raise.");
  m.def("check_sample_weight", [](const py::handle& sw) {
    const py::array a = checked_array(sw, "sample_weight", false);
    if (a.ndim() != 1) throw py::value_error("sample_weight: expected a 1-D array");
    const int64_t n = a.shape(0);
    if (dtype_of(a) == DType::Float32) check_sample_weight(static_cast<const float*>(a.data()), n);
    else if (dtype_of(a) == DType::Float64) check_sample_weight(static_cast<const double*>(a.data()), n);
    else throw py::type_error("sample_weight: expected float32 or float64");
  }, py::arg("sample_weight"),
        "The linear models' sample_weight check (finite, >= 0, not all zero): ValueError naming the first bad row.");

  py::class_<PyLinearModel> linear_model(m, "LinearModel",
                            "A linear model trained in C++ over caller-owned coef (K, d) and intercept (K,) "
                            "arrays, updated in place. Use dlopt.linear_model instead.");
  linear_model
      .def(py::init<const std::string&, const py::handle&, const py::handle&, const py::dict&>(),
           py::arg("objective"), py::arg("coef"), py::arg("intercept"), py::arg("config"))
      .def("fit", &PyLinearModel::fit, py::arg("X"), py::arg("y"), py::arg("sample_weight") = py::none(),
           py::arg("callback") = py::none(),
           "Trains for up to config['epochs'] epochs; callback(epoch, loss, val_score) -> bool stops "
           "when it returns True. Returns the epochs run.")
      .def("partial_fit", &PyLinearModel::partial_fit, py::arg("X"), py::arg("y"),
           py::arg("sample_weight") = py::none(), "One epoch with the current optimizer state.")
      .def("loss", &PyLinearModel::loss, py::arg("X"), py::arg("y"), py::arg("sample_weight") = py::none())
      .def("decision_function", &PyLinearModel::decision_function, py::arg("X"))
      .def("set_batch_reducer", &PyLinearModel::set_batch_reducer, py::arg("fn"),
           "Data-parallel training: fn(grad, sums) replaces a batch's summed gradient and [loss, weight] "
           "by their sums over every worker, in place (dlopt.distributed); None removes it.");
  bind_trainer_calls(linear_model);

  m.def(
      "solve_least_squares",
      [](const py::handle& X, const py::handle& y, const py::handle& sw, bool fit_intercept, double alpha,
         const py::handle& coef_obj, const py::handle& intercept_obj) {
        py::array coef = checked_array(coef_obj, "coef", true);
        py::array intercept = checked_array(intercept_obj, "intercept", true);
        if (dtype_of(intercept) != dtype_of(coef)) throw py::type_error("intercept: dtype must match coef's");
        if (coef.ndim() != 1 || intercept.ndim() != 1 || intercept.shape(0) != 1)
          throw py::value_error("coef: expected shape (n_features,); intercept: (1,)");
        return dtype_of(coef) == DType::Float32
                   ? least_squares<float>(X, y, sw, fit_intercept, alpha, coef, intercept)
                   : least_squares<double>(X, y, sw, fit_intercept, alpha, coef, intercept);
      },
      py::arg("X"), py::arg("y"), py::arg("sample_weight"), py::arg("fit_intercept"), py::arg("alpha"),
      py::arg("coef"), py::arg("intercept"),
      "Closed-form least squares (Cholesky of XᵀX in double, minimum-norm fallback) into coef, "
      "intercept. Returns True if X was rank deficient.");
}

}  // namespace dlopt::py_bindings
