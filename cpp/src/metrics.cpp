// Metrics: plain loops with double accumulators; definitions follow scikit-learn.

#include "dlopt/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace dlopt::metrics {
namespace {

void require_n(int64_t n) {
  if (n < 1) throw InvalidArgument("Invalid input: needs at least 1 sample, got 0");
}

template <class W>
double weight(const W* w, int64_t i) {
  return w ? double(w[i]) : 1.0;
}

double ratio(double num, double den, double zero_division) { return den == 0 ? zero_division : num / den; }

}  // namespace

template <class T>
double mean_squared_error(const T* y_true, const T* y_pred, int64_t n, const T* sw) {
  require_n(n);
  double s = 0, ws = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double r = double(y_true[i]) - double(y_pred[i]), w = weight(sw, i);
    s += w * r * r;
    ws += w;
  }
  return s / ws;
}

template <class T>
double mean_absolute_error(const T* y_true, const T* y_pred, int64_t n, const T* sw) {
  require_n(n);
  double s = 0, ws = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double w = weight(sw, i);
    s += w * std::abs(double(y_true[i]) - double(y_pred[i]));
    ws += w;
  }
  return s / ws;
}

template <class T>
double r2_score(const T* y_true, const T* y_pred, int64_t n, const T* sw) {
  require_n(n);
  double mean = 0, ws = 0;
  for (int64_t i = 0; i < n; ++i) mean += weight(sw, i) * double(y_true[i]), ws += weight(sw, i);
  mean /= ws;
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double w = weight(sw, i), r = double(y_true[i]) - double(y_pred[i]),
                 c = double(y_true[i]) - mean;
    num += w * r * r;
    den += w * c * c;
  }
  if (den == 0) return num == 0 ? 1.0 : 0.0;
  return 1 - num / den;
}

double accuracy_score(const int64_t* y_true, const int64_t* y_pred, int64_t n, const double* sw) {
  require_n(n);
  double ok = 0, ws = 0;
  for (int64_t i = 0; i < n; ++i) {
    ok += weight(sw, i) * (y_true[i] == y_pred[i]);
    ws += weight(sw, i);
  }
  return ok / ws;
}

void confusion_matrix(const int64_t* y_true, const int64_t* y_pred, int64_t n, int64_t K,
                      const double* sw, double* out) {
  std::fill(out, out + K * K, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = y_true[i], p = y_pred[i];
    if (t < 0 || p < 0 || t >= K || p >= K) continue;
    out[t * K + p] += weight(sw, i);
  }
}

std::vector<double> precision_recall_f1(Score score, const int64_t* y_true, const int64_t* y_pred,
                                        int64_t n, int64_t K, const double* sw, Average average,
                                        int64_t pos_label, double zero_division) {
  require_n(n);
  if (K < 1) throw InvalidArgument("Invalid n_classes: must be >= 1");
  std::vector<double> tp(std::size_t(K), 0.0), predicted(std::size_t(K), 0.0), actual(std::size_t(K), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const double w = weight(sw, i);
    const int64_t t = y_true[i], p = y_pred[i];
    if (t >= 0 && t < K) actual[t] += w;
    if (p >= 0 && p < K) predicted[p] += w;
    if (t == p && t >= 0 && t < K) tp[t] += w;
  }
  auto value = [&](double tp_, double pred_, double act_) {
    switch (score) {
      case Score::Precision: return ratio(tp_, pred_, zero_division);
      case Score::Recall: return ratio(tp_, act_, zero_division);
      default: return ratio(2 * tp_, pred_ + act_, zero_division);  // 2tp / (2tp + fp + fn)
    }
  };
  if (average == Average::Binary) {
    if (pos_label < 0 || pos_label >= K) throw InvalidArgument("Invalid pos_label code");
    return {value(tp[pos_label], predicted[pos_label], actual[pos_label])};
  }
  if (average == Average::Micro) {
    double t = 0, p = 0, a = 0;
    for (int64_t k = 0; k < K; ++k) t += tp[k], p += predicted[k], a += actual[k];
    return {value(t, p, a)};
  }
  std::vector<double> per(static_cast<std::size_t>(K));
  for (int64_t k = 0; k < K; ++k) per[k] = value(tp[k], predicted[k], actual[k]);
  if (average == Average::None) return per;
  if (average == Average::Macro) {
    double s = 0;
    for (double v : per) s += v;
    return {s / double(K)};
  }
  double s = 0, ws = 0;  // Weighted by support
  for (int64_t k = 0; k < K; ++k) s += per[k] * actual[k], ws += actual[k];
  if (ws == 0) return {zero_division};
  return {s / ws};
}

template <class T>
double log_loss(const int64_t* y_true, const T* proba, int64_t n, int64_t K, const double* sw) {
  require_n(n);
  const double eps = double(std::numeric_limits<T>::epsilon());
  double s = 0, ws = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = y_true[i];
    if (t < 0 || t >= K)
      throw InvalidArgument("Invalid y_true: row " + std::to_string(i) + " has a label outside `labels`");
    // scikit-learn clips in the probabilities' dtype, then takes the log.
    const T p = std::clamp(proba[i * K + t], T(eps), T(1 - eps));
    s -= weight(sw, i) * std::log(double(p));
    ws += weight(sw, i);
  }
  return s / ws;
}

#define DLOPT_METRICS(T)                                                            \
  template double mean_squared_error<T>(const T*, const T*, int64_t, const T*);    \
  template double mean_absolute_error<T>(const T*, const T*, int64_t, const T*);   \
  template double r2_score<T>(const T*, const T*, int64_t, const T*);              \
  template double log_loss<T>(const int64_t*, const T*, int64_t, int64_t, const double*);
DLOPT_METRICS(float)
DLOPT_METRICS(double)
#undef DLOPT_METRICS

}  // namespace dlopt::metrics
