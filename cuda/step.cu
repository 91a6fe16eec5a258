// CUDA backend of dlopt::step: a grid-stride kernel per tensor that calls the very same
// Rule::update as the CPU loop. (Multi-tensor chunked launches are the next step for this file.)

#include <cuda_runtime.h>

#include <string>

#include "dlopt/cuda/step.hpp"
#include "dlopt/optim/registry.hpp"

namespace dlopt::cuda {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("dlopt CUDA error in ") + what + ": " +
                             cudaGetErrorString(status));
}

template <class Rule, class T>
__global__ void update_kernel(cpu::Segment<Rule, T> seg) {
  T* const* slots = seg.slots.data();
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < seg.size; i += stride)
    Rule::update(seg.coeffs, i, seg.param, seg.grad, slots);
}

}  // namespace

bool is_available() {
  int devices = 0;
  return cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0;
}

template <class Rule, class T>
void run(const cpu::Segment<Rule, T>* segments, std::size_t count, void* stream) {
  constexpr int kThreads = 256;
  int device = 0, sms = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  for (std::size_t k = 0; k < count; ++k) {
    if (segments[k].size == 0) continue;
    const int64_t wanted = (segments[k].size + kThreads - 1) / kThreads;
    const int blocks = int(wanted < int64_t(sms) * 8 ? wanted : int64_t(sms) * 8);
    update_kernel<Rule, T><<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(segments[k]);
    check(cudaGetLastError(), Rule::name);
  }
}

#define DLOPT_INSTANTIATE_CUDA_RUN(Rule)                                                  \
  template void run<Rule, float>(const cpu::Segment<Rule, float>*, std::size_t, void*); \
  template void run<Rule, double>(const cpu::Segment<Rule, double>*, std::size_t, void*);
DLOPT_FOR_EACH_RULE(DLOPT_INSTANTIATE_CUDA_RUN)
#undef DLOPT_INSTANTIATE_CUDA_RUN

}  // namespace dlopt::cuda
