// CUDA runtime helpers (dlopt/cuda/memory.hpp): device memory, copies, fills, pointer queries.

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "dlopt/cuda/memory.hpp"

namespace dlopt::cuda {
namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("dlopt CUDA error in ") + what + ": " +
                             cudaGetErrorString(status));
}

template <class T>
__global__ void fill_kernel(T* p, int64_t n, T value) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) p[i] = value;
}

}  // namespace

PointerInfo pointer_info(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();  // an unknown pointer is an answer, not an error
    return {};
  }
  switch (a.type) {
    case cudaMemoryTypeDevice: return {MemoryKind::Device, a.device};
    case cudaMemoryTypeManaged: return {MemoryKind::Managed, a.device};
    case cudaMemoryTypeHost: return {MemoryKind::Host, a.device};
    default: return {};
  }
}

int current_device() {
  int device = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  return device;
}

std::string device_name(int device) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return prop.name;
}

void synchronize() { check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }

DeviceGuard::DeviceGuard(int device) {
  check(cudaGetDevice(&previous_), "cudaGetDevice");
  if (device != previous_) check(cudaSetDevice(device), "cudaSetDevice");
}

DeviceGuard::~DeviceGuard() {
  int now = previous_;
  if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
}

Buffer::Buffer(std::size_t bytes, int device) : bytes_(bytes), device_(device) {
  DeviceGuard guard(device);
  if (bytes > 0) check(cudaMalloc(&data_, bytes), "cudaMalloc");
}

Buffer::~Buffer() {
  if (!data_) return;
  // cudaFree synchronises the device; it must not throw from a destructor.
  int previous = -1;
  cudaGetDevice(&previous);
  if (previous != device_) cudaSetDevice(device_);
  cudaFree(data_);
  if (previous >= 0 && previous != device_) cudaSetDevice(previous);
}

void copy(void* dst, const void* src, std::size_t bytes) {
  if (bytes > 0) check(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault), "cudaMemcpy");
}

void copy_async(void* dst, const void* src, std::size_t bytes, void* stream) {
  if (bytes > 0)
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, static_cast<cudaStream_t>(stream)),
          "cudaMemcpyAsync");
}

EventTimer::EventTimer(void* stream) : stream_(stream) {
  cudaEvent_t b = nullptr, e = nullptr;
  check(cudaEventCreate(&b), "cudaEventCreate");
  if (cudaEventCreate(&e) != cudaSuccess) {
    cudaEventDestroy(b);
    check(cudaGetLastError(), "cudaEventCreate");
  }
  begin_ = b;
  end_ = e;
}

EventTimer::~EventTimer() {
  cudaEventDestroy(static_cast<cudaEvent_t>(begin_));
  cudaEventDestroy(static_cast<cudaEvent_t>(end_));
}

void EventTimer::start() {
  check(cudaEventRecord(static_cast<cudaEvent_t>(begin_), static_cast<cudaStream_t>(stream_)),
        "cudaEventRecord");
}

double EventTimer::stop_ms() {
  const auto end = static_cast<cudaEvent_t>(end_);
  check(cudaEventRecord(end, static_cast<cudaStream_t>(stream_)), "cudaEventRecord");
  check(cudaEventSynchronize(end), "cudaEventSynchronize");
  float ms = 0;
  check(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(begin_), end), "cudaEventElapsedTime");
  return double(ms);
}

void stream_synchronize(void* stream) {
  check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "cudaStreamSynchronize");
}

void stream_wait(void* producer, void* consumer) {
  if (producer == consumer) return;
  cudaEvent_t event = nullptr;
  check(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreate");
  cudaError_t status = cudaEventRecord(event, static_cast<cudaStream_t>(producer));
  if (status == cudaSuccess)
    status = cudaStreamWaitEvent(static_cast<cudaStream_t>(consumer), event, 0);
  cudaEventDestroy(event);  // released once the wait has been satisfied
  check(status, "cudaStreamWaitEvent");
}

template <class T>
void fill(T* p, int64_t n, T value, void* stream) {
  if (n <= 0) return;
  constexpr int threads = 256;
  const int64_t wanted = (n + threads - 1) / threads;
  const int blocks = int(wanted < 65535 ? wanted : 65535);
  fill_kernel<T><<<blocks, threads, 0, static_cast<cudaStream_t>(stream)>>>(p, n, value);
  check(cudaGetLastError(), "fill");
}

template void fill<float>(float*, int64_t, float, void*);
template void fill<double>(double*, int64_t, double, void*);

}  // namespace dlopt::cuda
