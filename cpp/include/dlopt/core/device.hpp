#pragma once
/// @file device.hpp
/// DLOPT_HD marks the elementwise optimizer rules: plain inline functions for the CPU compiler,
/// __host__ __device__ functions under nvcc, so CPU loops and CUDA kernels share one definition.

#if defined(__CUDACC__)
#define DLOPT_HD __host__ __device__ __forceinline__
#else
#define DLOPT_HD inline
#endif

#include <cmath>

namespace dlopt::detail {

template <class T>
DLOPT_HD T sign(T x) { return T((x > T(0)) - (x < T(0))); }

template <class T>
DLOPT_HD T max(T a, T b) { return a < b ? b : a; }

/// x limited to [lo, hi]; NaN stays NaN (as torch.clamp).
template <class T>
DLOPT_HD T clamp(T x, T lo, T hi) { return x < lo ? lo : (x > hi ? hi : x); }

/// torch's lerp: start + w·(end − start) for w < ½, else end − (end − start)·(1 − w), so that
/// w = 1 gives `end` exactly.
template <class T>
DLOPT_HD T lerp(T start, T end, T w) {
  return w < T(0.5) ? start + w * (end - start) : end - (end - start) * (T(1) - w);
}

}  // namespace dlopt::detail
