// CUDA step of Adafactor: the five launches of dlopt/cuda/adafactor.hpp over every tensor of the
// step, each a thin kernel around the DLOPT_HD body the C++ tests also run on the host. The table
// and the scratch live in one stream-ordered allocation (cudaMallocAsync / cudaFreeAsync on the
// step's stream), so the host never waits; the table is copied from pageable host memory, which
// cudaMemcpyAsync stages before it returns.

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "dlopt/cuda/adafactor.hpp"

namespace dlopt::cuda {
namespace {

using detail::AdafactorShared;
using detail::AdafactorTensor;
using detail::kAdafactorThreads;

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("dlopt CUDA error in Adafactor ") + what + ": " + cudaGetErrorString(status));
}

/// This thread runs f, then the block's barrier.
struct AllThreads {
  template <class F>
  __device__ void operator()(const F& f) const {
    f(int(threadIdx.x));
    __syncthreads();
  }
};

template <class T>
__global__ void __launch_bounds__(kAdafactorThreads)
    sums_kernel(const int64_t* __restrict__ first_block, const AdafactorTensor<T>* tensors, int64_t count, int64_t blocks) {
  __shared__ AdafactorShared shared;
  for (int64_t b = blockIdx.x; b < blocks; b += gridDim.x)
    detail::adafactor_sums<T>(first_block, tensors, std::size_t(count), b, shared, AllThreads{});
}

template <class T>
__global__ void __launch_bounds__(kAdafactorThreads) statistics_kernel(AdafactorTensor<T>* tensors, int64_t count) {
  for (int64_t k = blockIdx.x; k < count; k += gridDim.x)
    detail::adafactor_statistics<T>(tensors, std::size_t(k), AllThreads{});
}

template <class T>
__global__ void __launch_bounds__(kAdafactorThreads)
    u_squares_kernel(const int64_t* __restrict__ first_block, const AdafactorTensor<T>* tensors, int64_t count,
                     int64_t blocks) {
  __shared__ AdafactorShared shared;
  for (int64_t b = blockIdx.x; b < blocks; b += gridDim.x)
    detail::adafactor_u_squares<T>(first_block, tensors, std::size_t(count), b, shared, AllThreads{});
}

template <class T>
__global__ void finish_kernel(AdafactorTensor<T>* tensors, int64_t count) {
  const int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k < count) detail::adafactor_finish<T>(tensors, std::size_t(k));
}

template <class T>
__global__ void __launch_bounds__(kAdafactorThreads)
    apply_kernel(const int64_t* __restrict__ first_block, const AdafactorTensor<T>* tensors, int64_t count,
                 int64_t blocks) {
  for (int64_t b = blockIdx.x; b < blocks; b += gridDim.x)
    detail::adafactor_apply<T>(first_block, tensors, std::size_t(count), b, int(threadIdx.x));
}

unsigned grid_of(int64_t n) { return unsigned(n < int64_t(INT_MAX) ? n : int64_t(INT_MAX)); }

}  // namespace

/// cuda::run for Adafactor (called from cuda/step.cu's run).
template <class T>
void run_adafactor(const cpu::Segment<AdafactorRule, T>* segments, std::size_t count, void* stream_ptr) {
  std::vector<int64_t> first_block;
  std::vector<AdafactorTensor<T>> tensors;
  const std::size_t bytes = detail::adafactor_layout(segments, count, 0, first_block, tensors).bytes;
  if (tensors.empty()) return;  // only empty tensors: nothing to launch
  const auto stream = static_cast<cudaStream_t>(stream_ptr);
  void* base = nullptr;
  check(cudaMallocAsync(&base, bytes, stream), "cudaMallocAsync");
  const detail::AdafactorLayout layout =
      detail::adafactor_layout(segments, count, reinterpret_cast<uintptr_t>(base), first_block, tensors);
  const std::size_t n = tensors.size();
  const int64_t blocks = first_block.back();
  std::vector<unsigned char> table(layout.table_bytes);
  detail::write_adafactor_table(layout, first_block, tensors, table.data());
  cudaError_t status = cudaMemcpyAsync(base, table.data(), layout.table_bytes, cudaMemcpyHostToDevice, stream);
  const auto* d_first = static_cast<const int64_t*>(base);
  auto* d_tensors = reinterpret_cast<AdafactorTensor<T>*>(static_cast<char*>(base) + layout.tensors_at);
  const auto launched = [&] { return status == cudaSuccess && (status = cudaGetLastError()) == cudaSuccess; };
  if (status == cudaSuccess) sums_kernel<T><<<grid_of(blocks), kAdafactorThreads, 0, stream>>>(d_first, d_tensors, int64_t(n), blocks);
  if (launched()) statistics_kernel<T><<<grid_of(int64_t(n)), kAdafactorThreads, 0, stream>>>(d_tensors, int64_t(n));
  if (launched()) u_squares_kernel<T><<<grid_of(blocks), kAdafactorThreads, 0, stream>>>(d_first, d_tensors, int64_t(n), blocks);
  if (launched())
    finish_kernel<T><<<unsigned((n + kAdafactorThreads - 1) / kAdafactorThreads), kAdafactorThreads, 0, stream>>>(d_tensors, int64_t(n));
  if (launched()) apply_kernel<T><<<grid_of(blocks), kAdafactorThreads, 0, stream>>>(d_first, d_tensors, int64_t(n), blocks);
  launched();
  const cudaError_t freed = cudaFreeAsync(base, stream);  // after the launches, in stream order
  check(status, "step");
  check(freed, "cudaFreeAsync");
}

template void run_adafactor<float>(const cpu::Segment<AdafactorRule, float>*, std::size_t, void*);
template void run_adafactor<double>(const cpu::Segment<AdafactorRule, double>*, std::size_t, void*);

}  // namespace dlopt::cuda
