#pragma once
// CUDA device arrays seen from Python: any object exposing __cuda_array_interface__ (CuPy,
// PyTorch CUDA tensors, Numba, dlopt's own DeviceArray). The same rules as for NumPy arrays:
// never a hidden copy; parameters and state must be C-contiguous and writeable; every check
// runs before anything is modified, with a message naming the argument.

#include <pybind11/pybind11.h>

#include <cstdint>
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
  DType dtype = DType::Float32;
  std::intptr_t stream = 0;  ///< interface v3 'stream' (0: none given; 1: legacy; 2: per-thread)
  std::size_t nbytes() const { return std::size_t(size) * (dtype == DType::Float32 ? 4 : 8); }
};

/// True if `obj` is not a NumPy array and has a __cuda_array_interface__.
bool is_device_array(const py::handle& obj);

/// Parses obj's interface: float32/float64 ('<f4'/'<f8'), C-contiguous, no mask, aligned,
/// writeable when `writeable`. Throws TypeError / ValueError naming `what`.
DeviceView device_view(const py::handle& obj, const std::string& what, bool writeable);

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
  DType dtype = DType::Float32;

  static DeviceArray empty(std::vector<py::ssize_t> shape, DType dtype, int device);
  void* data() const;
  int device() const;
  std::size_t nbytes() const { return std::size_t(size) * (dtype == DType::Float32 ? 4 : 8); }
};

/// Sets every element of a (fresh) device array to `value`.
void fill(DeviceArray& a, double value);

/// Throws ValueError: `dev_what` is a device array while `host_what` is a NumPy array.
[[noreturn]] void throw_mixed(const std::string& dev_what, const std::string& host_what);

}  // namespace dlopt::py_bindings
