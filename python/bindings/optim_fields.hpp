#pragma once
// Hyperparameters and storage options between Python and C++ (optim_fields.cpp): the value
// parsers and their messages, torch's composite keywords split into Config fields (group_fields,
// by the table of dlopt/param_group_keys.hpp that the C++ checkpoints use too), and a Config to and from a dict through Config::visit. The step plans, the
// registry bindings and the linear models' optimizer_params all read them here.

#include <pybind11/pybind11.h>

#include <array>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "dlopt/core/error.hpp"
#include "dlopt/core/storage.hpp"

namespace dlopt::py_bindings {

namespace py = pybind11;

/// The param-group keys of StorageOptions (Python's dlopt.optim.optimizer.STORAGE_KEYS reads them here).
inline constexpr std::array<const char*, 4> kStorageKeys = {"state_dtype", "stochastic_rounding", "master_weights",
                                                            "seed"};

/// A param group's / optimizer_params' storage options (state_dtype, stochastic_rounding,
/// master_weights, seed; absent keys take their defaults): the one parser of these keys.
/// TypeError / ValueError name `where` + the key.
StorageOptions storage_options(const py::dict& d, const std::string& where);

/// The keys storage_options reads.
bool is_storage_key(const std::string& key);

/// A bool (Python's or NumPy's): TypeError naming `what` otherwise.
bool bool_value(py::handle v, const std::string& what);

/// A hyperparameter as a double: TypeError for what is not a real number (str, bool, complex, an
/// array of several elements), ValueError for what does not fit a double (10**400).
double number_value(py::handle v, const std::string& what);

/// state["step"]: an int in [0, 2^53) (a count; past that the bias corrections lose their meaning
/// and the counter could overflow). Checked before the plan caches anything.
int64_t step_value(py::handle v, const std::string& what);

/// A rule's float scalar (NaDam's mu_product): a finite number.
double scalar_value(py::handle v, const std::string& what);

/// True for values that cannot change without being replaced: Python numbers, bools, None, str,
/// NumPy scalars, and tuples of these. Anything else (0-d arrays, tensors, lists) may be changed
/// in place between steps.
bool is_immutable_value(const py::handle& v);

/// A param group's hyperparameters as Config fields (betas -> beta1, beta2); the (key, value)
/// pairs read go to `items` when given (the plan's cache of what it parsed).
py::dict group_fields(const py::dict& d, const std::string& where, const py::object& params_key,
                      std::vector<std::pair<py::object, py::object>>* items);

/// A Config from a dict of its fields (absent ones keep their defaults), validated; errors name
/// `where` + the field.
template <class Config>
Config config_from_dict(const py::dict& d, const std::string& where) {
  Config c;
  bool has_beta3 = false, has_eps_pair = false;
  c.visit([&](const char* key, auto& field) {
    using Field = std::decay_t<decltype(field)>;
    has_beta3 |= std::string_view(key) == "beta3";
    has_eps_pair |= std::string_view(key) == "eps1";
    if (!d.contains(key)) return;
    py::handle v = d[key];
    if constexpr (std::is_same_v<Field, bool>) {
      field = bool_value(v, where + key);
    } else {
      field = number_value(v, where + key);
    }
  });
  if (d.contains("beta1") && has_beta3 != d.contains("beta3"))
    throw py::type_error(where + "betas: expected " + (has_beta3 ? "three floats" : "a pair of floats"));
  if ((d.contains("eps") || d.contains("eps1")) && has_eps_pair != d.contains("eps1"))
    throw py::type_error(where + "eps: expected " + (has_eps_pair ? "a pair (eps1 or None, eps2)" : "a float"));
  try {
    c.validate();
  } catch (const InvalidArgument& e) {
    throw py::value_error(where + e.what());
  }
  return c;
}

/// A Config's fields as a dict.
template <class Config>
py::dict config_to_dict(Config c) {
  py::dict d;
  c.visit([&](const char* key, auto& field) { d[key] = field; });
  return d;
}

}  // namespace dlopt::py_bindings
