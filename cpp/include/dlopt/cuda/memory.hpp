#pragma once
/// @file cuda/memory.hpp
/// Small CUDA runtime helpers used by the bindings and the benchmark: device memory (RAII),
/// copies, fills and pointer queries. In a build without CUDA they throw dlopt::NotCompiled.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace dlopt::cuda {

/// What memory a pointer points into (cudaMemoryType): plain host memory CUDA does not know
/// (Unregistered), pinned host memory, device memory, or managed (unified) memory.
enum class MemoryKind { Unregistered, Host, Device, Managed };

/// Where a pointer lives (cudaPointerGetAttributes); `device` is -1 for plain host memory.
struct PointerInfo {
  MemoryKind kind = MemoryKind::Unregistered;  ///< the kind of memory
  int device = -1;                             ///< the device it belongs to; -1 for plain host memory
};
/// Where `p` lives.
PointerInfo pointer_info(const void* p);

/// The current device (cudaGetDevice).
int current_device();
/// Name of device `device` (cudaDeviceProp::name).
std::string device_name(int device);
/// Waits for all work on the current device.
void synchronize();

/// Makes `device` current for its lifetime, then restores the previous device.
class DeviceGuard {
 public:
  /// Makes `device` current, remembering the current one.
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

/// Device memory on one device, freed on destruction (cudaMalloc / cudaFree).
class Buffer {
 public:
  /// Allocates `bytes` on `device` (uninitialized).
  Buffer(std::size_t bytes, int device);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* data() const { return data_; }         ///< the device pointer
  std::size_t bytes() const { return bytes_; }  ///< its size
  int device() const { return device_; }        ///< the device it is on

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
  int device_ = 0;
};

/// cudaMemcpy with cudaMemcpyDefault (unified addressing): synchronous with the legacy default
/// stream, so a device-to-host copy sees every step enqueued before it.
void copy(void* dst, const void* src, std::size_t bytes);

/// cudaMemcpyAsync with cudaMemcpyDefault on `stream` (a device-to-device copy is the bandwidth
/// roof the benchmark measures against).
void copy_async(void* dst, const void* src, std::size_t bytes, void* stream = nullptr);

/// GPU time between start() and stop() of the work enqueued on `stream` (CUDA events).
class EventTimer {
 public:
  /// Creates the two events, for work on `stream` (a cudaStream_t; nullptr: the legacy default stream).
  explicit EventTimer(void* stream = nullptr);
  ~EventTimer();
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  /// Records the start event.
  void start();
  /// Records the end event, waits for it, and returns the milliseconds since start().
  double stop_ms();

 private:
  void* stream_ = nullptr;
  void* begin_ = nullptr;
  void* end_ = nullptr;
};

/// Makes `consumer` wait for the work enqueued so far on `producer` (streams as cudaStream_t;
/// nullptr is the legacy default stream), without blocking the host.
void stream_wait(void* producer, void* consumer);

/// Waits on the host for the work enqueued so far on `stream` (nullptr: the legacy default stream).
void stream_synchronize(void* stream);

/// Sets n elements at p (device memory of the current device) to value, on `stream`.
template <class T>
void fill(T* p, int64_t n, T value, void* stream = nullptr);

}  // namespace dlopt::cuda
