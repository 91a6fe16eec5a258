#pragma once
/// @file core/lane_sum.hpp
/// A sum in a fixed order that still vectorizes: element j of a run adds to lane j % kLanes in
/// double, and the lanes combine pairwise at the end. The order depends only on the element
/// positions, never on the thread count or the instruction set, so every reduction written with it
/// (the reduction phase of cpu::reduce, Adafactor's row and column statistics) is reproducible.
/// Internal to dlopt.

#include <cstdint>

#include "dlopt/core/device.hpp"

namespace dlopt::detail {

/// A running sum in LaneSum's fixed order (see the file comment).
struct LaneSum {
  static constexpr int kLanes = 16;  ///< lanes of the sum (a multiple of every SIMD width in doubles)
  double lane[kLanes] = {};          ///< the partial sum of each lane

  /// Adds f(j) for j < n, element j to lane j % kLanes. A run that continues an earlier one must
  /// start on a lane boundary (the earlier runs' lengths multiples of kLanes).
  template <class F>
  void add(int64_t n, const F& f) {
    double acc[kLanes];  // a local copy and a fixed-length inner loop keep the lanes in registers
    for (int l = 0; l < kLanes; ++l) acc[l] = lane[l];
    int64_t j0 = 0;
    for (; j0 + kLanes <= n; j0 += kLanes)
      for (int l = 0; l < kLanes; ++l) acc[l] += f(j0 + l);
    for (int l = 0; j0 + l < n; ++l) acc[l] += f(j0 + l);
    for (int l = 0; l < kLanes; ++l) lane[l] = acc[l];
  }

  /// a.add(n, f) and b.add(n, h) in one loop: the same sums, with both streams of loads in flight.
  template <class F, class H>
  static void add_both(LaneSum& a, LaneSum& b, int64_t n, const F& f, const H& h) {
    double x[kLanes], y[kLanes];
    for (int l = 0; l < kLanes; ++l) x[l] = a.lane[l], y[l] = b.lane[l];
    int64_t j0 = 0;
    for (; j0 + kLanes <= n; j0 += kLanes)
      for (int l = 0; l < kLanes; ++l) x[l] += f(j0 + l), y[l] += h(j0 + l);
    for (int l = 0; j0 + l < n; ++l) x[l] += f(j0 + l), y[l] += h(j0 + l);
    for (int l = 0; l < kLanes; ++l) a.lane[l] = x[l], b.lane[l] = y[l];
  }

  /// Lane l's part of add(n, f) on a lane holding `acc`: acc + f(j) for j = l, l + kLanes, ... < n,
  /// added in this order (add's additions, one lane at a time: the GPU's reduction gives each
  /// lane to a thread).
  template <class F>
  DLOPT_HD static double add_lane(double acc, int l, int64_t n, const F& f) {
    for (int64_t j = l; j < n; j += kLanes) acc += f(j);
    return acc;
  }

  /// kLanes lane sums combined pairwise (lane l with l + w, w = 8, 4, 2, 1).
  DLOPT_HD static double combine(const double* lanes) {
    double t[kLanes];
    for (int l = 0; l < kLanes; ++l) t[l] = lanes[l];
    for (int w = kLanes / 2; w >= 1; w /= 2)
      for (int l = 0; l < w; ++l) t[l] += t[l + w];
    return t[0];
  }

  /// The lanes combined pairwise (combine).
  double total() const { return combine(lane); }

  /// Σ f(j) over j < n in this order.
  template <class F>
  static double of(int64_t n, const F& f) {
    LaneSum s;
    s.add(n, f);
    return s.total();
  }
};

}  // namespace dlopt::detail
