// CUDA kernels of the linear models: one batch's forward pass, loss and gradient in four launches
// over the thread bodies of dlopt/cuda/linear_kernels.hpp (see there for the layout). Every sum has
// a fixed order (warp butterfly, in-order row ranges, a fixed block tree): no atomics, so a run gives
// the same bits every time.

#include <cuda_runtime.h>

#include <climits>
#include <stdexcept>
#include <string>

#include "dlopt/cuda/linear.hpp"
#include "dlopt/cuda/linear_kernels.hpp"

namespace dlopt::cuda {
namespace {

using namespace detail;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("dlopt CUDA error in ") + what + ": " +
                             cudaGetErrorString(status));
}

int grid_of(int64_t blocks) { return int(blocks < int64_t(INT_MAX) ? (blocks > 0 ? blocks : 1) : INT_MAX); }

template <class T>
__global__ void __launch_bounds__(kForwardWarps * kWarp) forward_kernel(const LinearBatch<T> a) {
  const int lane = int(threadIdx.x) % kWarp;
  const int64_t step = int64_t(gridDim.x) * kForwardWarps;
  // j is uniform across a warp, so every lane takes part in every shuffle.
  for (int64_t j = int64_t(blockIdx.x) * kForwardWarps + threadIdx.x / kWarp; j < a.count; j += step) {
    const T* x = a.X + a.row(j) * a.d;
    for (int64_t k = 0; k < a.K; ++k) {
      T v = dot_lane(x, a.W + k * a.d, a.d, lane);
      for (int off = kWarp / 2; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
      if (lane == 0) a.Z[j * a.K + k] = v;
    }
    if (lane == 0) row_objective(a, j);
  }
}

template <class T>
__global__ void __launch_bounds__(kPartialThreads) partial_kernel(const LinearBatch<T> a) {
  const int64_t c = int64_t(blockIdx.x) * kPartialThreads + threadIdx.x;
  if (c < a.d + 3) partial_sum(a, int64_t(blockIdx.z), c, int64_t(blockIdx.y) * kClassTile);
}

template <class T>
__global__ void __launch_bounds__(kReduceThreads) reduce_kernel(const LinearBatch<T> a) {
  __shared__ double v[kReduceThreads];
  const int t = int(threadIdx.x);
  const int64_t q = blockIdx.x;
  v[t] = reduce_lane(a, q, t);
  __syncthreads();
  for (int half = kReduceThreads / 2; half > 0; half /= 2) {
    tree_level(v, t, half);
    __syncthreads();
  }
  if (t == 0) a.sums[q] = v[0];
}

template <class T>
__global__ void __launch_bounds__(kReduceThreads) apply_kernel(const LinearBatch<T> a) {
  const int64_t q = int64_t(blockIdx.x) * kReduceThreads + threadIdx.x;
  if (q < a.np()) apply_grad(a, q);
}

}  // namespace

template <class T>
void launch_batch(const detail::LinearBatch<T>& a, void* stream_ptr) {
  if (a.count < 1) return;
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  const int64_t np = a.np();
  forward_kernel<T><<<grid_of((a.count + kForwardWarps - 1) / kForwardWarps), kForwardWarps * kWarp, 0, stream>>>(a);
  const dim3 partial_grid(unsigned((a.d + 3 + kPartialThreads - 1) / kPartialThreads),
                          unsigned((a.K + kClassTile - 1) / kClassTile), unsigned(a.parts));
  partial_kernel<T><<<partial_grid, kPartialThreads, 0, stream>>>(a);
  reduce_kernel<T><<<grid_of(np + 2), kReduceThreads, 0, stream>>>(a);
  apply_kernel<T><<<grid_of(a.grad ? (np + kReduceThreads - 1) / kReduceThreads : 1), kReduceThreads, 0, stream>>>(a);
  check(cudaGetLastError(), "linear-model kernels");
}

template void launch_batch<float>(const detail::LinearBatch<float>&, void*);
template void launch_batch<double>(const detail::LinearBatch<double>&, void*);

}  // namespace dlopt::cuda
