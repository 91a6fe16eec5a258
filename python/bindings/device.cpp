#include "device.hpp"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <optional>

#include "dlopt/cuda/memory.hpp"
#include "dlopt/cuda/schedule_free.hpp"
#include "dlopt/cuda/step.hpp"

namespace dlopt::py_bindings {

namespace {

std::string type_name(const py::handle& obj) {
  return py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>();
}

/// The interface's typestr of a format. bfloat16 has no standard one: "<V2" is what NumPy gives
/// ml_dtypes.bfloat16 (two opaque bytes), so a consumer sees the size but not the format.
const char* typestr(Storage s) {
  switch (s) {
    case Storage::Float64: return "<f8";
    case Storage::Float32: return "<f4";
    case Storage::BFloat16: return "<V2";
    case Storage::Float16: return "<f2";
    case Storage::Int8: return "|i1";
    case Storage::UInt8: return "|u1";
  }
  return "?";
}

/// The format of a foreign typestr; bfloat16 is never read from one ("<V2" could be any 2 bytes).
std::optional<Storage> storage_of_typestr(const std::string& ts) {
  if (ts == "<f4") return Storage::Float32;
  if (ts == "<f8") return Storage::Float64;
  if (ts == "<f2") return Storage::Float16;
  if (ts == "|i1" || ts == "<i1") return Storage::Int8;
  if (ts == "|u1" || ts == "<u1") return Storage::UInt8;
  return std::nullopt;
}

bool allows(std::initializer_list<Storage> allowed, Storage s) {
  return std::find(allowed.begin(), allowed.end(), s) != allowed.end();
}

std::string storage_list(std::initializer_list<Storage> allowed) {
  if (allowed.size() == 2) return "float32 or float64";
  std::string names;
  for (Storage s : allowed) names += std::string(names.empty() ? "one of " : ", ") + storage_name(s);
  return names;
}

py::tuple shape_tuple(const std::vector<py::ssize_t>& shape) {
  py::tuple t(shape.size());
  for (std::size_t i = 0; i < shape.size(); ++i) t[i] = py::int_(shape[i]);
  return t;
}

}  // namespace

bool is_device_array(const py::handle& obj) {
  if (py::isinstance<py::array>(obj)) return false;
  if (py::isinstance<DeviceArray>(obj)) return true;
  return py::hasattr(obj, "__cuda_array_interface__");
}

void throw_mixed(const std::string& dev_what, const std::string& host_what) {
  throw py::value_error(dev_what + " is a CUDA device array but " + host_what +
                        " is a NumPy array: the parameters, gradients and state of one optimizer "
                        "must all be on the host, or all on one GPU");
}

DeviceView device_view(const py::handle& obj, const std::string& what, bool writeable,
                       std::initializer_list<Storage> allowed) {
  DeviceView v;
  if (py::isinstance<DeviceArray>(obj)) {  // dlopt's own: no interface dict to build
    const auto& a = obj.cast<const DeviceArray&>();
    if (!allows(allowed, a.storage))
      throw py::type_error(what + ": dtype must be " + storage_list(allowed) + ", got a DeviceArray of " +
                           storage_name(a.storage));
    v.data = a.data();
    v.shape = a.shape;
    v.size = a.size;
    v.storage = a.storage;
    return v;
  }
  if (py::isinstance<py::array>(obj))
    throw py::type_error(what + ": expected a CUDA device array, got a numpy.ndarray (host memory); "
                                "the parameters, gradients and state of one optimizer must all be "
                                "on the host, or all on one GPU");
  py::object iface;
  if (!py::hasattr(obj, "__cuda_array_interface__"))
    throw py::type_error(what + ": expected a CUDA device array (an object with "
                                "__cuda_array_interface__: CuPy, PyTorch CUDA tensor, Numba, "
                                "dlopt.cuda.DeviceArray), got " + type_name(obj));
  iface = obj.attr("__cuda_array_interface__");
  if (!py::isinstance<py::dict>(iface))
    throw py::type_error(what + ": __cuda_array_interface__ is not a dict");
  py::dict d = py::reinterpret_borrow<py::dict>(iface);
  auto bad = [&](const std::string& why) { return py::value_error(what + ": __cuda_array_interface__ " + why); };

  if (!d.contains("version")) throw bad("has no 'version'");
  const long version = d["version"].cast<long>();
  if (version < 0 || version > 3)
    throw bad("version " + std::to_string(version) + " is not supported (dlopt reads versions 0 to 3)");

  if (!d.contains("typestr") || !py::isinstance<py::str>(d["typestr"])) throw bad("has no 'typestr'");
  const std::string ts = d["typestr"].cast<std::string>();
  const std::optional<Storage> storage = storage_of_typestr(ts);
  if (!storage || !allows(allowed, *storage))
    throw py::type_error(what + ": dtype must be " + storage_list(allowed) + " (typestr '<f4', '<f8', '<f2', '|i1' or "
                         "'|u1'; bfloat16 device arrays are dlopt.cuda.DeviceArray only, the interface has no "
                         "typestr for it), got '" + ts + "'");
  v.storage = *storage;
  const py::ssize_t itemsize = py::ssize_t(storage_bytes(v.storage));

  if (!d.contains("shape")) throw bad("has no 'shape'");
  v.size = 1;
  for (py::handle n : py::reinterpret_borrow<py::sequence>(d["shape"])) {
    const py::ssize_t extent = n.cast<py::ssize_t>();
    if (extent < 0) throw bad("has a negative extent in 'shape'");
    v.shape.push_back(extent);
    v.size *= extent;
  }

  if (!d.contains("data")) throw bad("has no 'data'");
  py::object data = d["data"];
  if (!py::isinstance<py::tuple>(data) || py::len(data) != 2) throw bad("'data' is not a (pointer, read-only) pair");
  py::tuple pair = py::reinterpret_borrow<py::tuple>(data);
  v.data = reinterpret_cast<void*>(pair[0].cast<std::uintptr_t>());
  const bool readonly = pair[1].cast<bool>();

  if (d.contains("mask") && !d["mask"].is_none())
    throw py::value_error(what + ": masked device arrays are not supported");
  if (d.contains("strides") && !d["strides"].is_none() && v.size > 0) {
    std::vector<py::ssize_t> strides;
    for (py::handle s : py::reinterpret_borrow<py::sequence>(d["strides"])) strides.push_back(s.cast<py::ssize_t>());
    if (strides.size() != v.shape.size()) throw bad("'strides' and 'shape' differ in length");
    py::ssize_t expected = itemsize;
    for (std::size_t k = v.shape.size(); k-- > 0;) {
      if (v.shape[k] != 1 && strides[k] != expected)
        throw py::value_error(what + ": array must be C-contiguous (dlopt works in place and never "
                                     "makes a hidden copy; pass a contiguous copy yourself)");
      expected *= v.shape[k];
    }
  }
  if (v.size > 0 && reinterpret_cast<std::uintptr_t>(v.data) % std::uintptr_t(itemsize) != 0)
    throw py::value_error(what + ": array is not aligned to its dtype");
  if (v.size > 0 && !v.data) throw bad("has a null data pointer");
  if (writeable && readonly)
    throw py::value_error(what + ": array is read-only, but dlopt updates it in place");
  if (version >= 3 && d.contains("stream") && !d["stream"].is_none())
    v.stream = d["stream"].cast<std::intptr_t>();
  return v;
}

int device_of(const DeviceView& v, const std::string& what) {
  if (v.size == 0) return -1;
  const cuda::PointerInfo info = cuda::pointer_info(v.data);
  if (info.kind != cuda::MemoryKind::Device && info.kind != cuda::MemoryKind::Managed)
    throw py::value_error(what + ": its __cuda_array_interface__ pointer is not CUDA device (or "
                                 "managed) memory");
  return info.device;
}

Range range_of(const DeviceView& v, std::string what) {
  const char* begin = static_cast<const char*>(v.data);
  return {begin, begin + v.nbytes(), std::move(what)};
}

DeviceArray DeviceArray::empty(std::vector<py::ssize_t> shape, Storage storage, int device) {
  cuda::require_device();
  DeviceArray a;
  a.size = 1;
  for (py::ssize_t n : shape) a.size *= n;
  a.shape = std::move(shape);
  a.storage = storage;
  a.buffer = std::make_shared<cuda::Buffer>(a.nbytes(), device);
  return a;
}

void* DeviceArray::data() const { return buffer ? buffer->data() : nullptr; }
int DeviceArray::device() const { return buffer ? buffer->device() : -1; }

namespace {

/// Copies a.nbytes() bytes of host memory into `a` (synchronous).
void upload(DeviceArray& a, const void* host) {
  if (a.size == 0) return;
  py::gil_scoped_release release;
  cuda::copy(a.data(), host, a.nbytes());
}

}  // namespace

DeviceArray state_array(const std::vector<py::ssize_t>& shape, Storage storage, double value, int device,
                        DeviceArray* scales) {
  DeviceArray a = DeviceArray::empty(shape, storage, device);
  cuda::DeviceGuard guard(device);
  // The compute formats are filled by a kernel (no host buffer); the stored formats (16-bit, 8-bit
  // codes and scales) are made on the host by fill_state, the CPU's own code, and copied over.
  if (storage == Storage::Float32) {
    cuda::fill(static_cast<float*>(a.data()), a.size, float(value));
    return a;
  }
  if (storage == Storage::Float64) {
    cuda::fill(static_cast<double*>(a.data()), a.size, value);
    return a;
  }
  std::vector<unsigned char> codes(a.nbytes());
  std::vector<float> block_scales(is_8bit(storage) ? std::size_t(scale_count(a.size)) : 0);
  fill_state(Buffer(codes.data(), storage, block_scales.data()), a.size, value);
  upload(a, codes.data());
  if (is_8bit(storage)) {
    *scales = DeviceArray::empty({py::ssize_t(block_scales.size())}, Storage::Float32, device);
    upload(*scales, block_scales.data());
  }
  return a;
}

DeviceArray master_copy(const DeviceView& param, int device) {
  std::vector<unsigned char> bits(param.nbytes());
  std::vector<float> wide(std::size_t(param.size));
  if (param.size > 0) {
    py::gil_scoped_release release;
    cuda::copy(bits.data(), param.data, param.nbytes());
  }
  to_float(Buffer(bits.data(), param.storage), param.size, wide.data());
  DeviceArray m = DeviceArray::empty(param.shape, Storage::Float32, device);
  upload(m, wide.data());
  return m;
}

namespace {

py::array to_numpy(const DeviceView& v) {
  cuda::require_device();
  py::array out(numpy_dtype(v.storage), v.shape);
  if (v.size > 0) {
    py::gil_scoped_release release;
    cuda::copy(out.mutable_data(), v.data, v.nbytes());
  }
  return out;
}

DeviceArray from_numpy(const py::handle& obj, int device) {
  py::array host = stored_array(obj, "array", false, kAllStorages);
  DeviceArray a = DeviceArray::empty(std::vector<py::ssize_t>(host.shape(), host.shape() + host.ndim()),
                                     *storage_of(host), device);
  upload(a, host.data());
  return a;
}

}  // namespace

void bind_cuda(py::module_& m) {
  m.def("cuda_is_available", &cuda::is_available,
        "True when dlopt was built with CUDA and a CUDA device is visible.");
  m.def("cuda_device_count", &cuda::device_count, "Number of visible CUDA devices (0 without CUDA).");
  m.def("cuda_device_name", &cuda::device_name, py::arg("device"), "The name of CUDA device `device`.");
  m.def("cuda_synchronize", [] {
    py::gil_scoped_release release;
    cuda::synchronize();
  }, "Waits for all work on the current CUDA device.");
  m.def("cuda_to_numpy", [](const py::handle& obj) {
    return to_numpy(device_view(obj, "array", false, kAllStorages));
  }, py::arg("array"), "A NumPy copy of any CUDA device array (__cuda_array_interface__), in its own dtype.");
  m.def("cuda_array_info", [](const py::handle& obj, bool any_format) {
    DeviceView v = device_view(obj, "array", false, any_format ? kAllStorages : std::initializer_list<Storage>{
                                                                     Storage::Float32, Storage::Float64});
    return py::make_tuple(shape_tuple(v.shape), numpy_dtype(v.storage), device_of(v, "array"));
  }, py::arg("array"), py::arg("any_format") = false,
     "(shape, dtype, device) of a CUDA device array; device is -1 when empty. A dtype other than "
     "float32/float64 is a TypeError unless any_format (16-bit, 8-bit codes).");
  m.def("cuda_array_spec", [](const py::handle& obj) {
    DeviceView v = device_view(obj, "array", false, kAllStorages);
    return py::make_tuple(shape_tuple(v.shape), numpy_dtype(v.storage));
  }, py::arg("array"), "(shape, dtype) of a CUDA device array in any stored format, read from its interface "
                       "alone (no driver call: works without a GPU).");
  m.def("is_device_array", [](const py::handle& obj) { return is_device_array(obj); }, py::arg("obj"),
        "True if obj is not a NumPy array and exposes __cuda_array_interface__.");

  m.def("cuda_copy_async", [](const py::handle& dst, const py::handle& src) {
    DeviceView d = device_view(dst, "dst", true), s = device_view(src, "src", false);
    if (d.nbytes() != s.nbytes()) throw py::value_error("cuda_copy_async: dst and src differ in size");
    cuda::copy_async(d.data, s.data, d.nbytes());
  }, py::arg("dst"), py::arg("src"),
     "Enqueues a device copy src -> dst (same byte size) on the legacy default stream (benchmarks).");
  m.def("schedule_free_move", [](const py::handle& param, const py::handle& z, double weight,
                                  const py::handle& master) {
    const DeviceView p = device_view(param, "param", true, kParamStorages);
    const bool narrow = is_16bit(p.storage);
    const DeviceView s = device_view(z, "z", false, kParamStorages);
    // z is in the compute type: the parameter's, float32 for a 16-bit parameter (as its master copy)
    const Storage compute = narrow ? Storage::Float32 : p.storage;
    if (s.storage != compute || s.size != p.size)
      throw py::value_error("schedule_free_move: z must be a " + std::string(narrow ? "float32" : "param-dtype") +
                            " array of param's size");
    DeviceView m;
    if (!master.is_none()) {
      if (!narrow) throw py::value_error("schedule_free_move: a master copy belongs to a 16-bit parameter only");
      m = device_view(master, "master", true, {Storage::Float32});
      if (m.size != p.size) throw py::value_error("schedule_free_move: master must be a float32 array of param's size");
    }
    std::vector<Range> written = {range_of(p, "param")};
    if (m.data) written.push_back(range_of(m, "master"));
    require_disjoint(written, {range_of(s, "z")});
    if (p.size == 0) return;
    cuda::require_device();  // no GPU (or no CUDA build): that error, not a pointer query's
    const int device = device_of(p, "param");
    if (device_of(s, "z") != device || (m.data && device_of(m, "master") != device))
      throw py::value_error("schedule_free_move: param, z and master are on different devices");
    py::gil_scoped_release release;
    cuda::DeviceGuard guard(device);
    const std::intptr_t streams[] = {p.stream, s.stream, m.stream};
    for (std::intptr_t st : streams)  // after the producers' streams (1, 2: default streams)
      if (st > 2) cuda::stream_wait(reinterpret_cast<void*>(st), nullptr);
    if (narrow)
      cuda::schedule_free_move_16bit(dlopt::Buffer(p.data, p.storage), static_cast<float*>(m.data),
                                     static_cast<const float*>(s.data), p.size, float(weight));
    else if (p.storage == Storage::Float32)
      cuda::schedule_free_move(static_cast<float*>(p.data), static_cast<const float*>(s.data), p.size, float(weight));
    else
      cuda::schedule_free_move(static_cast<double*>(p.data), static_cast<const double*>(s.data), p.size, weight);
    for (std::intptr_t st : streams)
      if (st > 2) cuda::stream_wait(nullptr, reinterpret_cast<void*>(st));
  }, py::arg("param"), py::arg("z"), py::arg("weight"), py::arg("master") = py::none(),
     "Schedule-Free's train() / eval() on device arrays: param <- lerp(param, z, weight) in z's dtype "
     "(dlopt/cuda/schedule_free.hpp), on the legacy default stream after the arrays' streams. A bfloat16 / "
     "float16 param has a float32 z and optionally its float32 master copy, which moves and is stored "
     "rounded to nearest in param, as on the host.");
  py::class_<cuda::EventTimer>(m, "CudaEventTimer",
                               "GPU time of the work enqueued on the legacy default stream (benchmarks).")
      .def(py::init([] {
        cuda::require_device();
        return std::make_unique<cuda::EventTimer>();
      }))
      .def("start", &cuda::EventTimer::start)
      .def("stop_ms", &cuda::EventTimer::stop_ms, py::call_guard<py::gil_scoped_release>(),
           "Waits for the work enqueued since start(); returns its GPU time in milliseconds.");

  py::class_<DeviceArray>(m, "DeviceArray", R"doc(CUDA device memory owned by dlopt.

The optimizer state of device parameters is kept in these (``state_dict()`` returns NumPy copies).
A DeviceArray exposes ``__cuda_array_interface__`` (version 3, the legacy default stream), so
``cupy.asarray(a)`` or ``torch.as_tensor(a, device="cuda")`` wrap it without a copy. There is no
public constructor: make one with :meth:`from_numpy`.

It holds float32, float64, float16, bfloat16 (``ml_dtypes.bfloat16``; the interface has no typestr
for it and says ``"<V2"``, two opaque bytes, so other libraries see only raw 16-bit elements), int8
or uint8 (the codes of 8-bit state, whose block scales are a float32 DeviceArray of their own).

Attributes
----------
shape : tuple of int
    The array's shape (C-contiguous).
dtype : numpy.dtype
    float32, float64, float16, bfloat16, int8 or uint8.
size : int
    Number of elements.
nbytes : int
    Bytes of device memory.
ndim : int
    Number of dimensions.
device : int
    The CUDA device index.

Examples
--------
>>> import numpy as np
>>> import dlopt
>>> def round_trip(x):
...     if not dlopt.cuda.is_available():
...         return x.copy()  # no GPU here: what the round trip gives
...     return dlopt.cuda.DeviceArray.from_numpy(x).to_numpy()
>>> round_trip(np.arange(3, dtype=np.float32))
array([0., 1., 2.], dtype=float32)
)doc")
      .def_static("from_numpy", &from_numpy, py::arg("array"), py::arg("device") = 0,
                  R"doc(A device copy of a NumPy array.

Parameters
----------
array : numpy.ndarray
    A C-contiguous array of one of the formats above.
device : int, default 0
    The CUDA device to copy it to.

Returns
-------
DeviceArray
    The copy, in memory owned by dlopt.

Raises
------
TypeError
    If `array` is not an array of one of those dtypes.
ValueError
    If it is not C-contiguous or not aligned.
RuntimeError
    If dlopt was built without CUDA or no GPU is present.
)doc")
      .def_property_readonly("shape", [](const DeviceArray& a) { return shape_tuple(a.shape); })
      .def_property_readonly("dtype", [](const DeviceArray& a) { return numpy_dtype(a.storage); })
      .def_property_readonly("size", [](const DeviceArray& a) { return a.size; })
      .def_property_readonly("nbytes", [](const DeviceArray& a) { return a.nbytes(); })
      .def_property_readonly("ndim", [](const DeviceArray& a) { return a.shape.size(); })
      .def_property_readonly("device", &DeviceArray::device)
      .def_property_readonly("__cuda_array_interface__", [](const DeviceArray& a) {
        py::dict d;
        d["shape"] = shape_tuple(a.shape);
        d["typestr"] = typestr(a.storage);
        d["data"] = py::make_tuple(py::int_(reinterpret_cast<std::uintptr_t>(a.data())), false);
        d["strides"] = py::none();
        d["version"] = 3;
        d["stream"] = 1;  // written by kernels on the legacy default stream
        return d;
      })
      .def("to_numpy", [](const DeviceArray& a) {
        DeviceView v;
        v.data = a.data();
        v.shape = a.shape;
        v.size = a.size;
        v.storage = a.storage;
        return to_numpy(v);
      }, "A NumPy copy (waits for the steps enqueued before it).")
      .def("__len__", [](const DeviceArray& a) {
        if (a.shape.empty()) throw py::type_error("len() of a 0-d array");
        return a.shape[0];
      })
      .def("__repr__", [](const DeviceArray& a) {
        return "DeviceArray(shape=" + py::repr(shape_tuple(a.shape)).cast<std::string>() +
               ", dtype=" + storage_name(a.storage) + ", device=" + std::to_string(a.device()) + ")";
      });
}

}  // namespace dlopt::py_bindings
