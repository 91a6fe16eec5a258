// Schedule-Free's train / eval switch on device buffers (dlopt/cuda/schedule_free.hpp).

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "dlopt/core/error.hpp"
#include "dlopt/cuda/schedule_free.hpp"

namespace dlopt::cuda {
namespace {

template <class T>
__global__ void move_kernel(T* p, const T* z, int64_t n, T w) {
  detail::move_elements(int64_t(blockIdx.x) * blockDim.x + threadIdx.x, int64_t(gridDim.x) * blockDim.x, n, p, z, w);
}

__global__ void move_16bit_kernel(dlopt::Buffer p, float* master, const float* z, int64_t n, float w) {
  detail::move_16bit_elements(int64_t(blockIdx.x) * blockDim.x + threadIdx.x, int64_t(gridDim.x) * blockDim.x, n, p,
                              master, z, w);
}

void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string("dlopt CUDA error in ") + what + ": " + cudaGetErrorString(e));
}

}  // namespace

template <class T>
void schedule_free_move(T* p, const T* z, int64_t n, T w, void* stream) {
  if (n <= 0) return;
  move_kernel<T><<<unsigned(move_blocks(n)), kMoveThreads, 0, static_cast<cudaStream_t>(stream)>>>(p, z, n, w);
  check_launch("schedule_free_move");
}

void schedule_free_move_16bit(const dlopt::Buffer& p, float* master, const float* z, int64_t n, float w, void* stream) {
  if (!is_16bit(p.storage)) throw InvalidArgument("schedule_free_move_16bit: the parameter is not bfloat16 or float16");
  if (n <= 0) return;
  move_16bit_kernel<<<unsigned(move_blocks(n)), kMoveThreads, 0, static_cast<cudaStream_t>(stream)>>>(p, master, z, n, w);
  check_launch("schedule_free_move_16bit");
}

template void schedule_free_move<float>(float*, const float*, int64_t, float, void*);
template void schedule_free_move<double>(double*, const double*, int64_t, double, void*);

}  // namespace dlopt::cuda
