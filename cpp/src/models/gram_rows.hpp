#pragma once
// The closed form's accumulation (least_squares.cpp): the sums of one part of the rows — BᵀB (lower
// triangle), Bᵀy, the column and target sums and the weight sum of the shifted, √weight-scaled rows
// B. Compiled once per x86-64 level in a portable build (gram_rows_impl.hpp, included by
// gram_rows.cpp and gram_rows_v3.cpp / gram_rows_v4.cpp), each copy with Eigen renamed so that no
// AVX instantiation of an Eigen template can stand in for the baseline's at link time. Hence this
// interface holds plain pointers only, no Eigen type.

#include <cstdint>

namespace dlopt::detail {

/// One part's rows [lo, hi) of the row-major n × d matrix X (y, sample_weight: null or n values),
/// shifted by `shift` (d values) and `yshift`.
template <class T>
struct GramRows {
  const T* X;
  const T* y;
  const T* sample_weight;
  int64_t lo, hi, d;
  const double* shift;
  double yshift;
};

/// Where a part's sums are written: A is d × d column-major (its lower triangle holds the sums, the
/// rest is zero), Xty and xsum d values each.
struct GramSums {
  double* A;
  double* Xty;
  double* xsum;
  double* ysum;
  double* wsum;
};

/// The accumulation compiled for one instruction set (one namespace per level, same code).
#define DLOPT_DECLARE_GRAM_LEVEL(level)                                \
  namespace level {                                                    \
  void accumulate(const GramRows<float>& rows, const GramSums& sums);  \
  void accumulate(const GramRows<double>& rows, const GramSums& sums); \
  }
DLOPT_DECLARE_GRAM_LEVEL(gram_baseline)
#if defined(DLOPT_DISPATCH)
DLOPT_DECLARE_GRAM_LEVEL(gram_x86_64_v3)
DLOPT_DECLARE_GRAM_LEVEL(gram_x86_64_v4)
#endif
#undef DLOPT_DECLARE_GRAM_LEVEL

}  // namespace dlopt::detail
