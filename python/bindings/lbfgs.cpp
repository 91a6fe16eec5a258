// Python face of dlopt::LBFGS (dlopt/optim/lbfgs.hpp): _core.LBFGS over the caller's NumPy parameter
// arrays, updated in place. The Python closure returns (loss, grads): the loss is checked to be a real
// number, each gradient to be an array of its parameter's dtype and shape, and copied into the flat
// gradient buffer (L-BFGS needs one flat vector; torch gathers p.grad with torch.cat the same way).
// The state crosses as plain tuples; dlopt/optim/lbfgs.py gives them torch's names.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "arrays.hpp"
#include "dlopt/optim/lbfgs.hpp"

namespace dlopt::py_bindings {

namespace {

std::string text(const py::handle& v) { return py::repr(v).cast<std::string>(); }

bool is_int(const py::handle& v) { return !py::isinstance<py::bool_>(v) && PyIndex_Check(v.ptr()); }
bool is_real(const py::handle& v) {
  return !py::isinstance<py::bool_>(v) && !py::isinstance<py::str>(v) && PyNumber_Check(v.ptr()) &&
         !PyComplex_Check(v.ptr()) && !py::isinstance<py::array>(v);
}

/// The options dict (torch's param-group keys; max_eval already resolved or None) as LBFGSOptions.
LBFGSOptions options_from(const py::dict& d) {
  LBFGSOptions o;
  for (auto item : d) {
    const std::string key = py::str(item.first);
    const py::handle v = item.second;
    auto number = [&]() {
      if (!is_real(v)) throw py::type_error(key + ": expected a real number, got " + text(v));
      return v.cast<double>();
    };
    auto integer = [&]() {
      if (!is_int(v)) throw py::type_error(key + ": expected an int, got " + text(v));
      return v.cast<int64_t>();
    };
    if (key == "lr") o.lr = number();
    else if (key == "max_iter") o.max_iter = integer();
    else if (key == "max_eval") {
      o.max_eval = v.is_none() ? -1 : integer();
      if (!v.is_none() && o.max_eval < 1)
        throw py::value_error("Invalid max_eval: " + std::to_string(o.max_eval) +
                              " (must be >= 1, or None for max_iter * 5 // 4)");
    }
    else if (key == "tolerance_grad") o.tolerance_grad = number();
    else if (key == "tolerance_change") o.tolerance_change = number();
    else if (key == "history_size") o.history_size = integer();
    else if (key == "line_search_fn") {
      if (!v.is_none() && !py::isinstance<py::str>(v))
        throw py::type_error("line_search_fn: expected None or 'strong_wolfe', got " + text(v));
      o.line_search_fn = v.is_none() ? "" : v.cast<std::string>();
      if (o.line_search_fn.empty() && !v.is_none())
        throw py::value_error("Invalid line_search_fn: '' (expected None or 'strong_wolfe')");
    } else {
      throw py::type_error("LBFGS: unknown option '" + key + "'");
    }
  }
  o.validate();
  return o;
}

/// The loss a closure returned, as torch's float(loss): a real number (Python, NumPy or a 0-d array).
double loss_value(const py::handle& v) {
  py::object x = py::reinterpret_borrow<py::object>(v);
  if (!py::isinstance<py::float_>(v) && !(py::isinstance<py::int_>(v) && !py::isinstance<py::bool_>(v))) {
    if (py::isinstance<py::bool_>(v) || py::isinstance<py::str>(v))
      throw py::type_error("LBFGS: the closure's loss must be a real number, got " + text(v));
    py::array a;
    try {
      a = py::module_::import("numpy").attr("asarray")(v);
    } catch (py::error_already_set&) {
      throw py::type_error("LBFGS: the closure's loss must be a real number, got " + text(v));
    }
    const char kind = a.dtype().kind();
    if (a.ndim() != 0 || (kind != 'f' && kind != 'i' && kind != 'u'))
      throw py::type_error("LBFGS: the closure's loss must be a real number, got " +
                           (a.ndim() ? "an array of shape " + text(py::tuple(a.attr("shape"))) : text(v)));
    x = a;
  }
  return x.cast<double>();
}

template <class T>
class Bound {
 public:
  Bound(std::vector<Span<T>> spans, std::vector<py::array> arrays)
      : arrays_(std::move(arrays)), opt_(std::move(spans)) {}

  py::object step(const py::object& closure, const LBFGSOptions& o) {
    opt_.options() = o;
    py::object first;
    const py::dtype dtype = py::dtype::of<T>();
    auto call = [&](const std::vector<Span<T>>& grad) -> double {
      const py::object result = closure();
      if (!(py::isinstance<py::tuple>(result) || py::isinstance<py::list>(result)) || py::len(result) != 2)
        throw py::type_error("LBFGS: the closure must return (loss, grads), got " + text(result));
      const py::sequence pair = result.cast<py::sequence>();
      const double loss = loss_value(pair[0]);
      copy_grads(pair[1], grad, dtype);
      if (!first) first = pair[0];
      return loss;
    };
    opt_.step(call);
    return first;
  }

  py::tuple state() const {
    const LBFGSState<T>& s = opt_.state();
    auto array = [](const std::vector<T>& v) { return py::array_t<T>(py::ssize_t(v.size()), v.data()); };
    py::object history = py::none(), al = py::none();
    if (s.has_history) {
      py::list dirs, stps;
      for (const auto& y : s.old_dirs) dirs.append(array(*y));
      for (const auto& x : s.old_stps) stps.append(array(*x));
      const std::vector<T> ro(s.ro.begin(), s.ro.end());
      history = py::make_tuple(array(s.d), s.t.value, s.t.tensor, dirs, stps, array(ro), s.H_diag.value,
                               s.H_diag.tensor, array(s.prev_flat_grad), s.prev_loss);
    }
    if (!s.al.empty()) al = array(s.al);
    return py::make_tuple(s.func_evals, s.n_iter, history, al);
  }

  void load_state(const LBFGSOptions& o, int64_t func_evals, int64_t n_iter, const py::object& history,
                  const py::object& al) {
    LBFGSState<T> s;
    s.func_evals = func_evals;
    s.n_iter = n_iter;
    if (!history.is_none()) {
      const py::tuple h = history.cast<py::tuple>();
      if (h.size() != 10) throw py::value_error("LBFGS state: malformed history tuple");
      s.has_history = true;
      s.d = vector(h[0], "d");
      s.t = {h[1].cast<double>(), h[2].cast<bool>()};
      for (auto y : h[3].cast<py::list>()) s.old_dirs.push_back(std::make_shared<const std::vector<T>>(vector(y, "old_dirs")));
      for (auto x : h[4].cast<py::list>()) s.old_stps.push_back(std::make_shared<const std::vector<T>>(vector(x, "old_stps")));
      const std::vector<T> ro = vector(h[5], "ro");
      s.ro.assign(ro.begin(), ro.end());
      s.H_diag = {h[6].cast<double>(), h[7].cast<bool>()};
      s.prev_flat_grad = vector(h[8], "prev_flat_grad");
      s.prev_loss = h[9].cast<double>();
    }
    if (!al.is_none()) s.al = vector(al, "al");
    const LBFGSOptions before = opt_.options();
    opt_.options() = o;
    try {
      opt_.set_state(std::move(s));
    } catch (...) {
      opt_.options() = before;
      throw;
    }
  }

 private:
  /// A 1-D array of T (lbfgs.py converts), copied.
  static std::vector<T> vector(const py::handle& obj, const char* what) {
    const py::array a = checked_array(obj, std::string("LBFGS state ") + what, false);
    if (!py::isinstance<py::array_t<T>>(a) || a.ndim() != 1)
      throw py::type_error(std::string("LBFGS state ") + what + ": expected a 1-D array of the parameters' dtype");
    const T* p = static_cast<const T*>(a.data());
    return std::vector<T>(p, p + a.shape(0));
  }

  /// The closure's gradients into the flat buffer: one array per parameter with its dtype and shape
  /// (any memory layout), or None for zeros; a single array when there is one parameter.
  void copy_grads(const py::handle& obj, const std::vector<Span<T>>& grad, const py::dtype& dtype) const {
    py::list grads;
    if (py::isinstance<py::array>(obj) && arrays_.size() == 1) {
      grads.append(obj);
    } else if (py::isinstance<py::list>(obj) || py::isinstance<py::tuple>(obj)) {
      for (auto g : py::reinterpret_borrow<py::sequence>(obj)) grads.append(g);
    } else {
      throw py::type_error("LBFGS: the closure's grads must be a list of arrays, one per parameter, got " +
                           text(obj));
    }
    if (grads.size() != arrays_.size())
      throw py::value_error("LBFGS: the closure returned " + std::to_string(grads.size()) + " gradients for " +
                            std::to_string(arrays_.size()) + " parameters");
    for (std::size_t i = 0; i < arrays_.size(); ++i) {
      const py::handle g = grads[i];
      if (g.is_none()) continue;  // zeros, as torch's None grad
      const std::string what = "LBFGS: the closure's grads[" + std::to_string(i) + "]";
      if (!py::isinstance<py::array>(g)) throw py::type_error(what + ": expected a numpy.ndarray, got " + text(g));
      py::array a = py::reinterpret_borrow<py::array>(g);
      if (!py::isinstance<py::array_t<T>>(a))
        throw py::type_error(what + ": dtype " + py::str(a.dtype()).cast<std::string>() +
                             " differs from its parameter's " + py::str(dtype).cast<std::string>());
      const py::array& p = arrays_[i];
      bool same_shape = a.ndim() == p.ndim();
      for (py::ssize_t k = 0; same_shape && k < a.ndim(); ++k) same_shape = a.shape(k) == p.shape(k);
      if (!same_shape)
        throw py::value_error(what + ": shape " + text(py::tuple(a.attr("shape"))) + " differs from its parameter's " +
                              text(py::tuple(p.attr("shape"))));
      if (!(a.flags() & py::array::c_style)) a = py::module_::import("numpy").attr("ascontiguousarray")(a);
      std::memcpy(grad[i].data, a.data(), std::size_t(grad[i].size) * sizeof(T));
    }
  }

  std::vector<py::array> arrays_;  // keep the parameters alive
  LBFGS<T> opt_;
};

class PyLBFGS {
 public:
  explicit PyLBFGS(const py::list& params) {
    if (params.size() == 0) throw py::value_error("params: optimizer got an empty parameter list");
    std::vector<py::array> arrays;
    std::vector<Range> ranges;
    for (std::size_t i = 0; i < params.size(); ++i) {
      const std::string what = "params[" + std::to_string(i) + "]";
      arrays.push_back(checked_array(params[i], what, true));
      if (dtype_of(arrays[i]) != dtype_of(arrays[0]))
        throw py::type_error(what + ": dtype " + dtype_name(dtype_of(arrays[i])) + " differs from params[0]'s " +
                             dtype_name(dtype_of(arrays[0])) + " (L-BFGS works on one flat vector of one dtype)");
      ranges.push_back(range_of(arrays[i], what));
    }
    require_disjoint(std::move(ranges), {});
    if (dtype_of(arrays[0]) == DType::Float32) opt_ = make<float>(std::move(arrays));
    else opt_ = make<double>(std::move(arrays));
  }

  py::object step(const py::object& closure, const py::dict& options) {
    if (!PyCallable_Check(closure.ptr()))
      throw py::type_error("LBFGS.step: closure must be a callable returning (loss, grads), got " + text(closure));
    const LBFGSOptions o = options_from(options);
    return std::visit([&](auto& b) { return b->step(closure, o); }, opt_);
  }
  py::tuple state() const { return std::visit([](const auto& b) { return b->state(); }, opt_); }
  void load_state(const py::dict& options, int64_t func_evals, int64_t n_iter, const py::object& history,
                  const py::object& al) {
    const LBFGSOptions o = options_from(options);
    std::visit([&](auto& b) { b->load_state(o, func_evals, n_iter, history, al); }, opt_);
  }

 private:
  template <class T>
  static std::unique_ptr<Bound<T>> make(std::vector<py::array> arrays) {
    std::vector<Span<T>> spans;
    for (py::array& a : arrays) spans.push_back({static_cast<T*>(a.mutable_data()), int64_t(a.size())});
    return std::make_unique<Bound<T>>(std::move(spans), std::move(arrays));
  }

  std::variant<std::unique_ptr<Bound<float>>, std::unique_ptr<Bound<double>>> opt_;
};

}  // namespace

void bind_lbfgs(py::module_& m) {
  py::class_<PyLBFGS>(m, "LBFGS",
                      "dlopt::LBFGS over NumPy parameter arrays (float32 or float64, updated in place). "
                      "Use dlopt.optim.LBFGS instead.")
      .def(py::init<const py::list&>(), py::arg("params"))
      .def("step", &PyLBFGS::step, py::arg("closure"), py::arg("options"),
           "One torch LBFGS step; closure() returns (loss, grads). Returns the first loss object.")
      .def("state", &PyLBFGS::state,
           "(func_evals, n_iter, history | None, al | None) with history = (d, t, t_is_tensor, old_dirs, "
           "old_stps, ro, H_diag, H_diag_is_tensor, prev_flat_grad, prev_loss); copies.")
      .def("load_state", &PyLBFGS::load_state, py::arg("options"), py::arg("func_evals"), py::arg("n_iter"),
           py::arg("history"), py::arg("al"), "Replaces the state (the tuple state() returns); checked first.")
      .def_static("check_options", [](const py::dict& options) { options_from(options); }, py::arg("options"),
                  "Raises TypeError / ValueError for invalid LBFGS options.");
}

}  // namespace dlopt::py_bindings
