#pragma once
// CUDA device arrays seen from Python: any object exposing __cuda_array_interface__ (CuPy,
// PyTorch CUDA tensors, Numba, dlopt's own DeviceArray). The same rules as for NumPy arrays:
// never a hidden copy; parameters and state must be C-contiguous and writeable; every check
// runs before anything is modified, with a message naming the argument.

#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "arrays.hpp"

namespace dlopt::cuda { class Buffer; }

namespace dlopt::py_bindings {

/// A parsed __cuda_array_interface__ (nothing is queried from the driver).
struct DeviceView {
  void* data = nullptr;
  std::vector<py::ssize_t> shape;
  int64_t size = 0;
  Storage storage = Storage::Float32;
  std::intptr_t stream = 0;  ///< interface v3 'stream' (0: none given; 1: legacy; 2: per-thread)
  std::size_t nbytes() const { return std::size_t(size) * storage_bytes(storage); }
};

/// The formats of parameters and gradients (float32/float64, and the 16-bit ones).
inline constexpr std::initializer_list<Storage> kParamStorages = {Storage::Float32, Storage::Float64,
                                                                  Storage::BFloat16, Storage::Float16};
/// Every stored format: parameters and the state slots (8-bit codes included).
inline constexpr std::initializer_list<Storage> kAllStorages = {Storage::Float32, Storage::Float64, Storage::BFloat16,
                                                                Storage::Float16, Storage::Int8, Storage::UInt8};

/// True if `obj` is not a NumPy array and has a __cuda_array_interface__.
bool is_device_array(const py::handle& obj);

/// Parses obj's interface: one of the `allowed` formats, C-contiguous, no mask, aligned, writeable
/// when `writeable`. Typestrs: '<f4', '<f8', '<f2' (float16), '|i1', '|u1'; bfloat16 has none in the
/// interface, so only dlopt's own DeviceArray holds it. Throws TypeError / ValueError naming `what`.
DeviceView device_view(const py::handle& obj, const std::string& what, bool writeable,
                       std::initializer_list<Storage> allowed = {Storage::Float32, Storage::Float64});

/// The device holding `v` (cudaPointerGetAttributes; device or managed memory), or -1 for an empty
/// array. Throws ValueError naming `what` for host memory; RuntimeError without CUDA.
int device_of(const DeviceView& v, const std::string& what);

/// Range of a device view, for the aliasing checks.
Range range_of(const DeviceView& v, std::string what);

/// Device memory owned by dlopt (optimizer state of device parameters), exposed to Python as
/// _core.DeviceArray with __cuda_array_interface__ and to_numpy().
struct DeviceArray {
  std::shared_ptr<cuda::Buffer> buffer;
  std::vector<py::ssize_t> shape;
  int64_t size = 0;
  Storage storage = Storage::Float32;

  static DeviceArray empty(std::vector<py::ssize_t> shape, Storage storage, int device);
  void* data() const;
  int device() const;
  std::size_t nbytes() const { return std::size_t(size) * storage_bytes(storage); }
};

/// New state on `device`, shaped `shape`, stored as `storage`, every element `value` as the host's
/// fill_state stores it (the same bits as host state; 8-bit codes with their block scales, which
/// `scales` receives; it may be null for the other formats). Enqueued on the legacy default stream.
DeviceArray state_array(const std::vector<py::ssize_t>& shape, Storage storage, double value, int device,
                        DeviceArray* scales);

/// A float32 copy on `device` of 16-bit parameters `param` (master weights), widened exactly as the
/// host's to_float widens them. Waits for the work enqueued on the legacy default stream.
DeviceArray master_copy(const DeviceView& param, int device);

/// Throws ValueError: `dev_what` is a device array while `host_what` is a NumPy array.
[[noreturn]] void throw_mixed(const std::string& dev_what, const std::string& host_what);

}  // namespace dlopt::py_bindings
