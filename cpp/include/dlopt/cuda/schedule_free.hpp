#pragma once
/// @file cuda/schedule_free.hpp
/// Schedule-Free's train / eval switch on device buffers: p ← lerp(p, z, w) elementwise, the rule's
/// own `move` (optim/schedule_free.hpp), so a device switch equals the host one bit for bit. Python's
/// ScheduleFreeSGD / ScheduleFreeAdamW train() / eval() call it for device parameters
/// (_core.schedule_free_move). A 16-bit parameter moves as Optimizer::train() / eval() moves it on the
/// host: its float32 master copy (or the parameter widened) moves, the master keeps the result and the
/// parameter takes it rounded to nearest. The kernel bodies are DLOPT_HD functions that the C++ tests
/// run on the host for every (block, thread) of a launch.

#include <cstdint>

#include "dlopt/core/storage.hpp"
#include "dlopt/cuda/multi_tensor.hpp"
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

/// The kernel body of a 16-bit (bfloat16 / float16) parameter `p` with float32 z and an optional
/// float32 master copy: x = master or p widened, x <- lerp(x, z, w), master <- x, p <- x to nearest.
DLOPT_HD void move_16bit_elements(int64_t thread, int64_t threads, int64_t n, const dlopt::Buffer& p,
                                  float* master, const float* z, float w) {
  for (int64_t i = thread; i < n; i += threads) {
    float x = master ? master[i] : load_element<float>(p, i);
    ScheduleFreeSGDRule::move(0, &x, z + i, w);
    if (master) master[i] = x;
    store_element<float>(p, i, x, /*stochastic=*/false, 0, /*slot=*/-1);
  }
}
}  // namespace detail

/// p ← lerp(p, z, w) for n elements of device memory (float or double), one launch on `stream`
/// (a cudaStream_t; nullptr: the legacy default stream). w is the rule's `mode_weight` (ScheduleFreeSGDRule / ScheduleFreeAdamWRule).
/// Throws NotCompiled in a build without CUDA.
template <class T>
void schedule_free_move(T* p, const T* z, int64_t n, T w, void* stream = nullptr);

/// The same switch for n elements of a bfloat16 or float16 device parameter `p` (its Buffer's storage
/// says which) with float32 z and `master` (the master copy, or null), as Optimizer::train() / eval()
/// on the host, bit for bit. Throws InvalidArgument for another storage, NotCompiled without CUDA.
void schedule_free_move_16bit(const dlopt::Buffer& p, float* master, const float* z, int64_t n, float w,
                              void* stream = nullptr);

}  // namespace dlopt::cuda
