// The hyperparameter and storage-option parsers of optim_fields.hpp.

#include "optim_fields.hpp"

#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>

#include "dlopt/core/storage.hpp"

namespace dlopt::py_bindings {

bool bool_value(py::handle v, const std::string& what) {
  const bool numpy_bool = std::string(Py_TYPE(v.ptr())->tp_name).rfind("numpy.bool", 0) == 0;
  if (!py::isinstance<py::bool_>(v) && !numpy_bool)
    throw py::type_error(what + ": expected a bool, got " + py::repr(v).cast<std::string>());
  return v.cast<bool>();
}


StorageOptions storage_options(const py::dict& d, const std::string& where) {
  StorageOptions o;
  if (d.contains("state_dtype")) {
    py::handle v = d["state_dtype"];
    if (!v.is_none()) {
      if (!py::isinstance<py::str>(v))
        throw py::type_error(where + "state_dtype: expected None or a str, got " + py::repr(v).cast<std::string>());
      try {
        o.state_dtype = parse_state_dtype(v.cast<std::string>());
      } catch (const InvalidArgument& e) {
        throw py::value_error(where + e.what());
      }
    }
  }
  if (d.contains("stochastic_rounding"))
    o.stochastic_rounding = bool_value(d["stochastic_rounding"], where + "stochastic_rounding");
  if (d.contains("master_weights")) o.master_weights = bool_value(d["master_weights"], where + "master_weights");
  if (d.contains("seed")) {
    py::handle v = d["seed"];
    if (!PyLong_Check(v.ptr()) || py::isinstance<py::bool_>(v))
      throw py::type_error(where + "seed: expected an int, got " + py::repr(v).cast<std::string>());
    const unsigned long long seed = PyLong_AsUnsignedLongLong(v.ptr());
    if (PyErr_Occurred()) {
      PyErr_Clear();
      throw py::value_error(where + "seed: must be in [0, 2**64), got " + py::repr(v).cast<std::string>());
    }
    o.seed = seed;
  }
  return o;
}

bool is_storage_key(const std::string& key) {
  return std::find(kStorageKeys.begin(), kStorageKeys.end(), key) != kStorageKeys.end();
}

double number_value(py::handle v, const std::string& what) {
  if (py::isinstance<py::bool_>(v) || !PyNumber_Check(v.ptr()) || py::isinstance<py::str>(v) ||
      PyComplex_Check(v.ptr()))
    throw py::type_error(what + ": expected a number, got " + py::repr(v).cast<std::string>());
  const double x = PyFloat_AsDouble(v.ptr());
  if (x == -1.0 && PyErr_Occurred()) {
    const bool overflow = PyErr_ExceptionMatches(PyExc_OverflowError);
    PyErr_Clear();
    if (overflow) throw py::value_error(what + ": " + py::repr(v).cast<std::string>() + " is out of range");
    throw py::type_error(what + ": expected a number, got " + py::repr(v).cast<std::string>());
  }
  return x;
}

int64_t step_value(py::handle v, const std::string& what) {
  if (py::isinstance<py::bool_>(v) || !PyIndex_Check(v.ptr()))
    throw py::type_error(what + ": expected an int, got " + py::repr(v).cast<std::string>());
  py::object i = py::reinterpret_steal<py::object>(PyNumber_Index(v.ptr()));
  if (!i) throw py::error_already_set();
  int overflow = 0;
  const long long n = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow != 0 || n < 0 || n >= (1LL << 53))
    throw py::value_error(what + ": must be in [0, 2**53), got " + py::repr(v).cast<std::string>());
  return int64_t(n);
}

double scalar_value(py::handle v, const std::string& what) {
  const double x = number_value(v, what);
  if (!std::isfinite(x)) throw py::value_error(what + ": must be finite, got " + py::repr(v).cast<std::string>());
  return x;
}

bool is_immutable_value(const py::handle& v) {
  static const py::object* numpy_scalar = new py::object(py::module_::import("numpy").attr("generic"));  // never freed: outlives the interpreter
  if (v.is_none() || PyFloat_CheckExact(v.ptr()) || PyLong_CheckExact(v.ptr()) || PyBool_Check(v.ptr()) ||
      PyUnicode_CheckExact(v.ptr()))
    return true;
  if (PyTuple_CheckExact(v.ptr())) {
    for (py::handle x : py::reinterpret_borrow<py::tuple>(v))
      if (!is_immutable_value(x)) return false;
    return true;
  }
  return py::isinstance(v, *numpy_scalar);
}

py::dict group_fields(const py::dict& d, const std::string& where, const py::object& params_key,
                      std::vector<std::pair<py::object, py::object>>* items) {
  py::dict fields;
  for (auto kv : d) {
    py::object key = py::reinterpret_borrow<py::object>(kv.first);
    py::object value = py::reinterpret_borrow<py::object>(kv.second);
    if (key.equal(params_key)) continue;
    if (items) items->emplace_back(key, value);
    const std::string name = py::isinstance<py::str>(key) ? key.cast<std::string>() : "";
    auto split = [&](std::initializer_list<const char*> parts, const char* what) {
      if (!(py::isinstance<py::tuple>(value) || py::isinstance<py::list>(value)) || py::len(value) != parts.size())
        throw py::type_error(where + name + ": expected " + what + ", got " + py::repr(value).cast<std::string>());
      int i = 0;
      for (const char* part : parts) fields[part] = value[py::int_(i++)];
    };
    // torch's composite keywords as the Config's scalar fields (one place: Python asks here too)
    if (name == "betas") {
      const bool triple = (py::isinstance<py::tuple>(value) || py::isinstance<py::list>(value)) && py::len(value) == 3;
      if (triple) split({"beta1", "beta2", "beta3"}, "three floats");  // AdEMAMix; config_from_dict checks
      else split({"beta1", "beta2"}, "a pair of floats");
    } else if (name == "eps" && (py::isinstance<py::tuple>(value) || py::isinstance<py::list>(value))) {
      split({"eps1", "eps2"}, "a pair (eps1 or None, eps2)");  // Adafactor; config_from_dict checks
      if (fields["eps1"].is_none()) fields["eps1"] = py::float_(-1.0);  // the dtype's machine epsilon
    } else if (name == "etas") {
      split({"etaminus", "etaplus"}, "a pair of floats (etaminus, etaplus)");
    } else if (name == "step_sizes") {
      split({"step_size_min", "step_size_max"}, "a pair of floats (min, max)");
    } else if ((name == "alpha_warmup" || name == "beta3_warmup") && value.is_none()) {
      fields[key] = py::int_(0);  // no warmup: the Config's 0
    } else if (name == "clip_exponent" && value.is_none()) {
      fields["clip"] = py::bool_(false);
    } else if (name == "ns_coefficients") {
      split({"ns_a", "ns_b", "ns_c"}, "three floats (a, b, c)");
    } else if (name == "adjust_lr_fn") {
      const std::string fn = value.is_none() ? "original" : py::isinstance<py::str>(value) ? value.cast<std::string>() : "?";
      if (fn != "original" && fn != "match_rms_adamw")
        throw py::value_error(where + "adjust_lr_fn: expected None, 'original' or 'match_rms_adamw', got " +
                              py::repr(value).cast<std::string>());
      fields["adjust_lr"] = py::float_(fn == "original" ? 0.0 : 1.0);
    } else if (name == "ns_dtype") {
      const std::string dt = py::isinstance<py::str>(value) ? value.cast<std::string>() : "?";
      if (dt != "float32" && dt != "bfloat16")
        throw py::value_error(where + "ns_dtype: expected 'float32' or 'bfloat16', got " +
                              py::repr(value).cast<std::string>());
      fields["ns_bfloat16"] = py::bool_(dt == "bfloat16");
    } else if (!is_storage_key(name)) {
      fields[key] = value;
    }
  }
  return fields;
}

}  // namespace dlopt::py_bindings
