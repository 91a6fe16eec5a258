// Python face of dlopt/metrics.hpp. Regression metrics take float32/float64 arrays in place;
// classification metrics take int64 class codes made by dlopt.metrics (which maps labels to codes).

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <optional>
#include <string>

#include "arrays.hpp"
#include "dlopt/metrics.hpp"

namespace dlopt::py_bindings {
namespace {

using Codes = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using Weights = py::array_t<double, py::array::c_style | py::array::forcecast>;

template <class F>
double regression(const py::handle& t_obj, const py::handle& p_obj, const py::handle& w_obj, F&& f) {
  py::array t = checked_array(t_obj, "y_true", false);
  py::array p = checked_like(p_obj, t, "y_pred", "y_true", false);
  if (t.ndim() != 1) throw py::value_error("y_true: expected a 1-D array");
  py::array w;
  if (!w_obj.is_none()) w = checked_like(w_obj, t, "sample_weight", "y_true", false);
  const int64_t n = t.shape(0);
  if (dtype_of(t) == DType::Float32)
    return f(static_cast<const float*>(t.data()), static_cast<const float*>(p.data()), n,
             w_obj.is_none() ? nullptr : static_cast<const float*>(w.data()));
  return f(static_cast<const double*>(t.data()), static_cast<const double*>(p.data()), n,
           w_obj.is_none() ? nullptr : static_cast<const double*>(w.data()));
}

const double* weights_ptr(const std::optional<Weights>& w, int64_t n) {
  if (!w) return nullptr;
  if (w->ndim() != 1 || w->shape(0) != n) throw py::value_error("sample_weight: expected shape (n_samples,)");
  return w->data();
}

void same_length(const Codes& t, const Codes& p) {
  if (t.ndim() != 1 || p.ndim() != 1 || t.shape(0) != p.shape(0))
    throw py::value_error("y_true and y_pred: expected 1-D arrays of the same length");
}

metrics::Average parse_average(const std::optional<std::string>& a) {
  if (!a) return metrics::Average::None;
  if (*a == "binary") return metrics::Average::Binary;
  if (*a == "micro") return metrics::Average::Micro;
  if (*a == "macro") return metrics::Average::Macro;
  if (*a == "weighted") return metrics::Average::Weighted;
  throw py::value_error("average: expected None, 'binary', 'micro', 'macro' or 'weighted', got '" + *a + "'");
}

}  // namespace

void bind_metrics(py::module_& m) {
  m.def("mean_squared_error", [](const py::handle& t, const py::handle& p, const py::handle& w) {
    return regression(t, p, w, [](auto... a) { return metrics::mean_squared_error(a...); });
  }, py::arg("y_true"), py::arg("y_pred"), py::arg("sample_weight") = py::none());
  m.def("mean_absolute_error", [](const py::handle& t, const py::handle& p, const py::handle& w) {
    return regression(t, p, w, [](auto... a) { return metrics::mean_absolute_error(a...); });
  }, py::arg("y_true"), py::arg("y_pred"), py::arg("sample_weight") = py::none());
  m.def("r2_score", [](const py::handle& t, const py::handle& p, const py::handle& w) {
    return regression(t, p, w, [](auto... a) { return metrics::r2_score(a...); });
  }, py::arg("y_true"), py::arg("y_pred"), py::arg("sample_weight") = py::none());

  m.def("accuracy_score", [](const Codes& t, const Codes& p, const std::optional<Weights>& w) {
    same_length(t, p);
    return metrics::accuracy_score(t.data(), p.data(), t.shape(0), weights_ptr(w, t.shape(0)));
  }, py::arg("y_true"), py::arg("y_pred"), py::arg("sample_weight") = py::none());

  m.def("confusion_matrix", [](const Codes& t, const Codes& p, int64_t k, const std::optional<Weights>& w) {
    same_length(t, p);
    if (k < 1) throw py::value_error("n_classes: must be >= 1");
    py::array_t<double> out({k, k});
    metrics::confusion_matrix(t.data(), p.data(), t.shape(0), k, weights_ptr(w, t.shape(0)), out.mutable_data());
    return out;
  }, py::arg("y_true"), py::arg("y_pred"), py::arg("n_classes"), py::arg("sample_weight") = py::none());

  m.def("precision_recall_f1", [](const std::string& score, const Codes& t, const Codes& p, int64_t k,
                                  const std::optional<Weights>& w, const std::optional<std::string>& average,
                                  int64_t pos_label, double zero_division) {
    same_length(t, p);
    metrics::Score s = score == "precision" ? metrics::Score::Precision
                       : score == "recall"  ? metrics::Score::Recall
                       : score == "f1"      ? metrics::Score::F1
                                            : throw py::value_error("score: precision, recall or f1");
    return metrics::precision_recall_f1(s, t.data(), p.data(), t.shape(0), k, weights_ptr(w, t.shape(0)),
                                        parse_average(average), pos_label, zero_division);
  }, py::arg("score"), py::arg("y_true"), py::arg("y_pred"), py::arg("n_classes"), py::arg("sample_weight"),
     py::arg("average"), py::arg("pos_label"), py::arg("zero_division"));

  m.def("log_loss", [](const Codes& t, const py::handle& proba_obj, const std::optional<Weights>& w) {
    py::array proba = checked_array(proba_obj, "y_proba", false);
    if (proba.ndim() != 2 || proba.shape(0) != t.shape(0) || t.ndim() != 1)
      throw py::value_error("y_proba: expected shape (n_samples, n_classes)");
    const int64_t n = t.shape(0), k = proba.shape(1);
    return dtype_of(proba) == DType::Float32
               ? metrics::log_loss(t.data(), static_cast<const float*>(proba.data()), n, k, weights_ptr(w, n))
               : metrics::log_loss(t.data(), static_cast<const double*>(proba.data()), n, k, weights_ptr(w, n));
  }, py::arg("y_true"), py::arg("y_proba"), py::arg("sample_weight") = py::none());
}

}  // namespace dlopt::py_bindings
