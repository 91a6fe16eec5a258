// The hyperparameter and storage-option parsers of optim_fields.hpp.

#include "optim_fields.hpp"

#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>

#include "dlopt/core/storage.hpp"
#include "dlopt/param_group_keys.hpp"

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

namespace {

py::object as_python(double value, group_keys::ValueKind kind) {
  if (kind == group_keys::ValueKind::Boolean) return py::bool_(value != 0);
  if (kind == group_keys::ValueKind::Integer) return py::int_(int64_t(value));
  return py::float_(value);
}

bool is_sequence(const py::handle& v) { return py::isinstance<py::tuple>(v) || py::isinstance<py::list>(v); }

}  // namespace

py::dict group_fields(const py::dict& d, const std::string& where, const py::object& params_key,
                      std::vector<std::pair<py::object, py::object>>* items) {
  py::dict fields;
  for (auto kv : d) {
    py::object key = py::reinterpret_borrow<py::object>(kv.first);
    py::object value = py::reinterpret_borrow<py::object>(kv.second);
    if (key.equal(params_key)) continue;
    if (items) items->emplace_back(key, value);
    const std::string name = py::isinstance<py::str>(key) ? key.cast<std::string>() : "";
    // torch's keywords as the Config's fields, by the one table (dlopt/param_group_keys.hpp);
    // config_from_dict then checks the values and which fields the Config has
    const group_keys::Composite* composite = group_keys::composite(name);
    const group_keys::NoneMeans* none = value.is_none() ? group_keys::none_for_key(name) : nullptr;
    if (composite && (is_sequence(value) || !composite->scalar_is_field)) {
      const std::size_t parts = is_sequence(value) ? py::len(value) : 0;
      if (parts < composite->min_parts || parts > composite->max_parts)
        throw py::type_error(where + name + ": expected " + composite->expected + ", got " +
                             py::repr(value).cast<std::string>());
      for (std::size_t i = 0; i < parts; ++i) {
        py::object part = value[py::int_(i)];
        const group_keys::NoneMeans* part_none =
            part.is_none() ? group_keys::none_for_field(composite->fields[i]) : nullptr;
        fields[composite->fields[i]] = part_none ? as_python(part_none->value, part_none->kind) : part;
      }
    } else if (none) {
      fields[none->field] = as_python(none->value, none->kind);
    } else if (const group_keys::Choice* choice = group_keys::choice(name)) {
      const int index = value.is_none() && choice->none_is_first ? 0
                        : py::isinstance<py::str>(value)       ? group_keys::choice_index(*choice, value.cast<std::string>())
                                                               : -1;
      if (index < 0)
        throw py::value_error(where + name + ": expected " + group_keys::choice_expected(*choice) + ", got " +
                              py::repr(value).cast<std::string>());
      fields[choice->field] = as_python(index, choice->kind);
    } else if (!is_storage_key(name)) {
      fields[key] = value;
    }
  }
  return fields;
}

}  // namespace dlopt::py_bindings
