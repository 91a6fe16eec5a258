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

}  // namespace dlopt::detail
