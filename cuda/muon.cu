// CUDA backend of Muon (optim/muon.hpp): per tensor, the launches muon_tensor lists
// (dlopt/cuda/muon_kernels.hpp, where the kernel bodies and their summation orders are written):
// the momentum / look-ahead / transpose, the norm's two passes, the scaling, 3·ns_steps products,
// and the decayed update. The products are a tiled kernel of ours, not cuBLAS: their bits depend
// on the shape only (no TF32, no heuristics), a host emulation checks them, and libdlopt links the
// CUDA runtime alone.

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "dlopt/cuda/muon_kernels.hpp"

namespace dlopt::cuda::detail::muon {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("dlopt CUDA error in Muon's ") + what + ": " + cudaGetErrorString(status));
}

template <class F>
__global__ void __launch_bounds__(kThreads) elementwise_kernel(F f, int64_t n) {
  elementwise(f, n, int64_t(blockIdx.x), int64_t(gridDim.x), int(threadIdx.x));
}

template <class F>
__global__ void single_kernel(F f) {
  f(0);
}

template <class T>
__global__ void __launch_bounds__(kThreads) norm_kernel(const T* __restrict__ x, int64_t n, double* __restrict__ partial) {
  __shared__ NormShared sh;
  const int64_t chunk = blockIdx.x;
  norm_lanes(x, n, chunk, sh, int(threadIdx.x));
  __syncthreads();
  norm_chunk(sh, chunk, partial, int(threadIdx.x));
}

template <class T, class Acc>
__global__ void __launch_bounds__(kThreads) gemm_kernel(Gemm<T, Acc> g) {
  __shared__ GemmShared<Acc> sh;
  GemmAccumulators<Acc> acc = {};
  const int me = int(threadIdx.x);
  GemmAccumulators<Acc>* const mine = &acc;  // this thread's, whatever thread index gemm_tile passes
  const auto acc_of = [mine](int) -> GemmAccumulators<Acc>& { return *mine; };
  const auto all_threads = [me](const auto& phase) {
    phase(me);
    __syncthreads();
  };
  gemm_tile(g, int64_t(blockIdx.y), int64_t(blockIdx.x), sh, acc_of, all_threads);
}

/// muon_tensor's launches as CUDA kernels on one stream.
struct DeviceLaunch {
  cudaStream_t stream;

  template <class F>
  void elementwise(int64_t n, const F& f) {
    elementwise_kernel<<<unsigned(elementwise_grid(n)), kThreads, 0, stream>>>(f, n);
    check(cudaGetLastError(), "elementwise kernel");
  }
  template <class T>
  void norm(const T* x, int64_t n, double* partial) {
    const int64_t chunks = (n + kNormChunk - 1) / kNormChunk;
    if (chunks > INT_MAX) throw std::runtime_error("dlopt: Muon's tensor is too large for one norm launch");
    norm_kernel<T><<<unsigned(chunks), kThreads, 0, stream>>>(x, n, partial);
    check(cudaGetLastError(), "norm kernel");
  }
  template <class F>
  void single(const F& f) {
    single_kernel<<<1, 1, 0, stream>>>(f);
    check(cudaGetLastError(), "norm kernel");
  }
  template <class T, class Acc>
  void gemm(const Gemm<T, Acc>& g) {
    const int64_t tiles_m = (g.m + kBlockTile - 1) / kBlockTile, tiles_n = (g.n + kBlockTile - 1) / kBlockTile;
    if (tiles_m > 65535 || tiles_n > INT_MAX)
      throw std::runtime_error("dlopt: Muon's matrix is too large for the product kernel (" + std::to_string(g.m) +
                               " x " + std::to_string(g.n) + ")");
    gemm_kernel<T, Acc><<<dim3(unsigned(tiles_n), unsigned(tiles_m)), kThreads, 0, stream>>>(g);
    check(cudaGetLastError(), "product kernel");
  }
};

constexpr std::size_t round_up(std::size_t n) { return (n + 255) / 256 * 256; }

template <class T>
void run_tensor(const cpu::Segment<MuonRule, T>& seg, cudaStream_t stream) {
  const int64_t rows = seg.rows, cols = seg.size / seg.rows;
  const int64_t m = rows < cols ? rows : cols, n = seg.size / m;
  int64_t count[6];
  Workspace<T>::sizes(m, n, count);
  const std::size_t width[6] = {sizeof(T), sizeof(T), sizeof(T), sizeof(T), sizeof(double), sizeof(T)};
  std::size_t offset[6], bytes = 0;
  for (int k = 0; k < 6; ++k) offset[k] = bytes, bytes += round_up(std::size_t(count[k]) * width[k]);
  void* base = nullptr;
  check(cudaMallocAsync(&base, bytes, stream), "cudaMallocAsync (workspace)");
  char* b = static_cast<char*>(base);
  const Workspace<T> w{reinterpret_cast<T*>(b + offset[0]), reinterpret_cast<T*>(b + offset[1]),
                       reinterpret_cast<T*>(b + offset[2]), reinterpret_cast<T*>(b + offset[3]),
                       reinterpret_cast<double*>(b + offset[4]), reinterpret_cast<T*>(b + offset[5])};
  DeviceLaunch launch{stream};
  try {
    T* param = static_cast<T*>(seg.param.data);
    const T* grad = static_cast<const T*>(seg.grad.data);
    T* buf = static_cast<T*>(seg.slots[0].data);
    if (seg.coeffs.bf16) muon_tensor<T, float>(seg.coeffs, rows, cols, param, grad, buf, w, launch);
    else muon_tensor<T, T>(seg.coeffs, rows, cols, param, grad, buf, w, launch);
  } catch (...) {
    cudaFreeAsync(base, stream);
    throw;
  }
  check(cudaFreeAsync(base, stream), "cudaFreeAsync (workspace)");
}

}  // namespace

template <class T>
void run(const cpu::Segment<MuonRule, T>* segments, std::size_t count, void* stream) {
  for (std::size_t k = 0; k < count; ++k)  // native 2-D tensors only (check_step)
    if (segments[k].size > 0) run_tensor(segments[k], static_cast<cudaStream_t>(stream));
}

template void run<float>(const cpu::Segment<MuonRule, float>*, std::size_t, void*);
template void run<double>(const cpu::Segment<MuonRule, double>*, std::size_t, void*);

}  // namespace dlopt::cuda::detail::muon
