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

}  // namespace

template <class T>
void schedule_free_move(T* p, const T* z, int64_t n, T w, void* stream) {
  if (n <= 0) return;
  move_kernel<T><<<unsigned(move_blocks(n)), kMoveThreads, 0, static_cast<cudaStream_t>(stream)>>>(p, z, n, w);
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string("dlopt CUDA error in schedule_free_move: ") + cudaGetErrorString(e));
}

template void schedule_free_move<float>(float*, const float*, int64_t, float, void*);
template void schedule_free_move<double>(double*, const double*, int64_t, double, void*);

}  // namespace dlopt::cuda
