#pragma once
/// @file device.hpp
/// DLOPT_HD marks the elementwise optimizer rules: plain inline functions for the CPU compiler,
/// __host__ __device__ functions under nvcc, so CPU loops and CUDA kernels share one definition.

/// DLOPT_HD: `__host__ __device__` and force-inlined under nvcc, `inline` for the CPU compiler.
#if defined(__CUDACC__)
#define DLOPT_HD __host__ __device__ __forceinline__
#else
#define DLOPT_HD inline
#endif

/// DLOPT_KERNEL marks a function holding a hot CPU loop. In a portable build of the library
/// (DLOPT_NATIVE=OFF on x86-64 with GCC or Clang, which define DLOPT_DISPATCH) it is compiled once
/// per x86-64 level and the loader picks the best for the CPU (function multiversioning through an
/// ifunc): AVX-512 or AVX2 where the CPU has them, SSE2 anywhere else. Elsewhere it is empty.
/// Everything inlined into it follows the chosen level; a call it makes does not, so the loop must
/// sit in the marked function itself, not in an OpenMP region's outlined body.
#if defined(DLOPT_DISPATCH) && !defined(__CUDACC__)
#define DLOPT_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DLOPT_KERNEL
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
