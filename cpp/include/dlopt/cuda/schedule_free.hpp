#pragma once
/// @file cuda/schedule_free.hpp
/// Schedule-Free's train / eval switch on device buffers: p ← lerp(p, z, w) elementwise, the rule's
/// own `move` (optim/schedule_free.hpp), so a device switch equals the host one bit for bit. Python's
/// ScheduleFreeSGD / ScheduleFreeAdamW train() / eval() call it for device parameters
/// (_core.schedule_free_move). The kernel body is a DLOPT_HD function that the C++ tests run on the
/// host for every (block, thread) of a launch.

#include <cstdint>

#include "dlopt/optim/schedule_free.hpp"

namespace dlopt::cuda {

/// Threads per block of the switch's launch.
inline constexpr int kMoveThreads = 256;
/// Blocks of the launch for n elements (each thread strides over the grid).
inline int64_t move_blocks(int64_t n) {
  const int64_t b = (n + kMoveThreads - 1) / kMoveThreads;
  return b < 1 ? 1 : (b > 4096 ? 4096 : b);
}

namespace detail {
/// The kernel body: the thread numbered `thread` of a grid of `threads` threads moves elements
/// thread, thread + threads, ... below n.
template <class T>
DLOPT_HD void move_elements(int64_t thread, int64_t threads, int64_t n, T* p, const T* z, T w) {
  for (int64_t i = thread; i < n; i += threads) ScheduleFreeSGDRule::move(i, p, z, w);
}
}  // namespace detail

/// p ← lerp(p, z, w) for n elements of device memory (float or double), one launch on `stream`
/// (a cudaStream_t; nullptr: the legacy default stream). w is the rule's `mode_weight` (ScheduleFreeSGDRule / ScheduleFreeAdamWRule).
/// Throws NotCompiled in a build without CUDA.
template <class T>
void schedule_free_move(T* p, const T* z, int64_t n, T w, void* stream = nullptr);

}  // namespace dlopt::cuda
