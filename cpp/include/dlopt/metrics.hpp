#pragma once
/// @file metrics.hpp
/// Regression and classification metrics with scikit-learn's definitions. Sums are accumulated
/// in double precision; every function takes optional sample weights (nullptr: all ones).
///
/// Classification metrics work on class *codes*: y_true[i], y_pred[i] ∈ [0, n_classes), or −1 for
/// a label outside the classes of interest (it then counts as "some other class"). The Python layer
/// maps arbitrary labels to codes.

#include <cstdint>
#include <vector>

#include "dlopt/core/error.hpp"

namespace dlopt::metrics {

/// mean(w·(y − ŷ)²) / mean(w)
template <class T>
double mean_squared_error(const T* y_true, const T* y_pred, int64_t n, const T* sample_weight = nullptr);
/// mean(w·|y − ŷ|) / mean(w)
template <class T>
double mean_absolute_error(const T* y_true, const T* y_pred, int64_t n, const T* sample_weight = nullptr);
/// 1 − Σw(y − ŷ)² / Σw(y − ȳ)²; for constant y: 1 if the prediction is perfect, else 0 (force_finite).
template <class T>
double r2_score(const T* y_true, const T* y_pred, int64_t n, const T* sample_weight = nullptr);

/// Weighted fraction of rows with y_true == y_pred.
double accuracy_score(const int64_t* y_true, const int64_t* y_pred, int64_t n,
                      const double* sample_weight = nullptr);

/// out[i·K + j] = weight of rows with true class i predicted as j (rows with a −1 code are skipped).
void confusion_matrix(const int64_t* y_true, const int64_t* y_pred, int64_t n, int64_t n_classes,
                      const double* sample_weight, double* out);

/// How precision, recall and F1 are averaged over classes (scikit-learn's `average`).
enum class Average { None, Binary, Micro, Macro, Weighted };
/// Which ratio precision_recall_f1 computes.
enum class Score { Precision, Recall, F1 };

/// Precision tp/(tp+fp), recall tp/(tp+fn) or F1 2tp/(2tp+fp+fn) per class, then averaged.
/// Returns one value per class for Average::None, else one value. A ratio with a zero denominator
/// is `zero_division` (0, 1 or NaN), as in scikit-learn. `pos_label` is the code of the positive class
/// for Average::Binary.
std::vector<double> precision_recall_f1(Score score, const int64_t* y_true, const int64_t* y_pred,
                                        int64_t n, int64_t n_classes, const double* sample_weight,
                                        Average average, int64_t pos_label, double zero_division);

/// Mean cross-entropy −log p[i, y_true[i]] of probabilities `proba` (row-major n × K), clipped to
/// [eps, 1 − eps] with eps the machine epsilon of T, as scikit-learn's log_loss.
template <class T>
double log_loss(const int64_t* y_true, const T* proba, int64_t n, int64_t n_classes,
                const double* sample_weight = nullptr);

}  // namespace dlopt::metrics
