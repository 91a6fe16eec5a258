// Python face of the training utilities: clipping, accumulation/averaging passes and the C++
// checkpoint reader/writer.
// Every array is checked (type, dtype, contiguity, writeability, size, aliasing) before any
// byte is written; the kernels run without the GIL.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <tuple>
#include <string>
#include <vector>

#include "arrays.hpp"
#include "dlopt/average.hpp"
#include "dlopt/checkpoint.hpp"
#include "dlopt/clip.hpp"

namespace dlopt::py_bindings {
namespace {

// A list of arrays split by dtype, remembering each one's position in the list.
struct Split {
  std::vector<py::array> arrays;
  std::vector<Span<float>> f32;
  std::vector<Span<double>> f64;
  std::vector<std::pair<bool, std::size_t>> where;  // (is_f64, index in f32/f64)
  /// f(spans, count) for the float32 list, then the float64 one.
  template <class F>
  void each_dtype(const F& f) {
    f(f32.data(), f32.size());
    f(f64.data(), f64.size());
  }
};

py::list as_list(const py::handle& obj, const char* what) {
  if (py::isinstance<py::array>(obj)) {
    py::list l;
    l.append(obj);
    return l;
  }
  if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
    throw py::type_error(std::string(what) + ": expected a list of arrays, got " +
                         py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>());
  return py::list(py::reinterpret_borrow<py::object>(obj));
}

Split split(const py::list& list, const char* what, bool writeable) {
  Split s;
  std::vector<Range> ranges;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string name = std::string(what) + "[" + std::to_string(i) + "]";
    py::array a = checked_array(list[i], name, writeable);
    if (writeable) ranges.push_back(range_of(a, name));
    if (dtype_of(a) == DType::Float32) {
      s.where.push_back({false, s.f32.size()});
      s.f32.push_back({static_cast<float*>(a.mutable_data()), int64_t(a.size())});
    } else {
      s.where.push_back({true, s.f64.size()});
      s.f64.push_back({static_cast<double*>(a.mutable_data()), int64_t(a.size())});
    }
    s.arrays.push_back(std::move(a));
  }
  if (writeable) require_disjoint(std::move(ranges), {});
  return s;
}

template <class T>
std::vector<Span<const T>> const_spans(const std::vector<Span<T>>& v) {
  std::vector<Span<const T>> out;
  for (const auto& s : v) out.push_back({s.data, s.size});
  return out;
}

// torch's total norm over a mixed list: per-tensor norms in list order, then their norm, rounded
// to the result dtype (float32 when every tensor is float32, as torch returns it).
std::pair<double, bool> total_norm_of(const Split& s, double norm_type) {
  std::vector<double> n32(s.f32.size()), n64(s.f64.size()), all;
  {
    py::gil_scoped_release release;
    auto c32 = const_spans(s.f32);
    auto c64 = const_spans(s.f64);
    tensor_norms(c32.data(), c32.size(), norm_type, n32.data());
    tensor_norms(c64.data(), c64.size(), norm_type, n64.data());
  }
  for (auto [is64, k] : s.where) all.push_back(is64 ? n64[k] : double(float(n32[k])));
  const bool f32 = s.f64.empty();
  double total = all.empty() ? (vector_norm(nullptr, 0, norm_type), 0.0)
                             : vector_norm(all.data(), all.size(), norm_type);
  if (f32) total = double(float(total));
  return {total, f32};
}

// scale() with the factor in the tensors' dtype (float32 tensors: the factor rounded to float).
template <class T>
void scale_as_dtype(Span<T>* tensors, std::size_t count, double factor) {
  scale(tensors, count, T(factor));
}

void scale_all(Split& s, double max_norm, double total) {
  const double coef = clip_coefficient(max_norm, total);
  py::gil_scoped_release release;
  s.each_dtype([&](auto* t, std::size_t n) { scale_as_dtype(t, n, coef); });
}

// Pairs (dst[k], src[k]) of equal dtype and shape; dst writeable, nothing overlapping a dst.
template <class Src>
struct Pairs {
  std::vector<Span<float>> d32;
  std::vector<Span<double>> d64;
  std::vector<Span<std::conditional_t<std::is_const_v<Src>, const float, float>>> s32;
  std::vector<Span<std::conditional_t<std::is_const_v<Src>, const double, double>>> s64;
  /// f(dst spans, src spans, count) for the float32 pairs, then the float64 ones.
  template <class F>
  void each_dtype(const F& f) {
    f(d32.data(), s32.data(), d32.size());
    f(d64.data(), s64.data(), d64.size());
  }
};

template <bool SrcWritten>
auto pairs(const py::handle& dst_obj, const py::handle& src_obj, const char* dst_what,
           const char* src_what) {
  using Src = std::conditional_t<SrcWritten, float, const float>;
  Pairs<Src> p;
  py::list dst = as_list(dst_obj, dst_what), src = as_list(src_obj, src_what);
  if (dst.size() != src.size())
    throw py::value_error(std::string(src_what) + ": expected " + std::to_string(dst.size()) +
                          " arrays (one per entry of " + dst_what + "), got " +
                          std::to_string(src.size()));
  std::vector<Range> written, read;
  for (std::size_t i = 0; i < dst.size(); ++i) {
    const std::string dn = std::string(dst_what) + "[" + std::to_string(i) + "]";
    const std::string sn = std::string(src_what) + "[" + std::to_string(i) + "]";
    py::array d = checked_array(dst[i], dn, true);
    py::array s = checked_like(src[i], d, sn, dn, SrcWritten);
    written.push_back(range_of(d, dn));
    (SrcWritten ? written : read).push_back(range_of(s, sn));
    if (dtype_of(d) == DType::Float32) {
      p.d32.push_back({static_cast<float*>(d.mutable_data()), int64_t(d.size())});
      p.s32.push_back({static_cast<float*>(const_cast<void*>(s.data())), int64_t(s.size())});
    } else {
      p.d64.push_back({static_cast<double*>(d.mutable_data()), int64_t(d.size())});
      p.s64.push_back({static_cast<double*>(const_cast<void*>(s.data())), int64_t(s.size())});
    }
  }
  require_disjoint(std::move(written), read);
  return p;
}

}  // namespace

void bind_train(py::module_& m) {
  py::register_exception<CheckpointError>(m, "CheckpointError", PyExc_ValueError).attr("__doc__") =
      R"doc(Raised for a checkpoint that cannot be read back as written.

A truncated, corrupted (checksum), wrong-version or mismatched checkpoint (an optimizer or schedule
of another kind or shape than the one it is loaded into). A subclass of ValueError. A failed system
call (a missing file, no permission) raises the OSError of its errno instead.

Examples
--------
>>> import os, tempfile
>>> import dlopt
>>> path = os.path.join(tempfile.mkdtemp(), "broken.dlopt")
>>> with open(path, "wb") as f:
...     _ = f.write(b"not a checkpoint")
>>> try:
...     dlopt.load(path)
... except dlopt.CheckpointError as e:
...     print("CheckpointError")
CheckpointError
)doc";
  // Registered after CheckpointError, so tried first: a failed system call is Python's OSError of
  // its errno (FileNotFoundError, PermissionError, ...), as open() and os.write raise it.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const CheckpointIOError& e) {
      py::object err = py::reinterpret_borrow<py::object>(PyExc_OSError)(
          e.code, std::strerror(e.code), e.path);
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(err.ptr())), err.ptr());
    }
  });
  m.def("checkpoint_itemsize", &checkpoint_itemsize, py::arg("dtype"),
        "Item size of a dtype token of the checkpoint array table ('<f4', '|b1', 'bfloat16', ...); "
        "0 for a dtype the format does not store.");
  py::register_exception<NonFiniteNorm>(m, "NonFiniteNorm", PyExc_RuntimeError);

  m.def("total_norm", [](const py::handle& grads, double norm_type) {
    Split s = split(as_list(grads, "grads"), "grads", false);
    return total_norm_of(s, norm_type);
  }, py::arg("grads"), py::arg("norm_type"),
  "(total norm, result is float32) of a list of arrays, as torch.nn.utils.get_total_norm.");

  m.def("clip_grad_norm", [](const py::handle& grads, double max_norm, double norm_type,
                             bool error_if_nonfinite) {
    Split s = split(as_list(grads, "grads"), "grads", true);
    auto [total, f32] = total_norm_of(s, norm_type);
    if (error_if_nonfinite) require_finite_norm(total, norm_type);
    scale_all(s, max_norm, total);
    return std::make_pair(total, f32);
  }, py::arg("grads"), py::arg("max_norm"), py::arg("norm_type"), py::arg("error_if_nonfinite"));

  m.def("require_finite_norm", &require_finite_norm, py::arg("total"), py::arg("norm_type"),
        "Raises NonFiniteNorm (a RuntimeError) with torch's message when total is NaN or infinite.");

  m.def("clip_grads_with_norm", [](const py::handle& grads, double max_norm, double total) {
    Split s = split(as_list(grads, "grads"), "grads", true);
    scale_all(s, max_norm, total);
  }, py::arg("grads"), py::arg("max_norm"), py::arg("total_norm"));

  m.def("clip_grad_value", [](const py::handle& grads, double clip_value) {
    Split s = split(as_list(grads, "grads"), "grads", true);
    py::gil_scoped_release release;
    s.each_dtype([&](auto* t, std::size_t n) { clip_grad_value(t, n, clip_value); });
  }, py::arg("grads"), py::arg("clip_value"));

  m.def("scale", [](const py::handle& tensors, double factor) {
    Split s = split(as_list(tensors, "tensors"), "tensors", true);
    py::gil_scoped_release release;
    s.each_dtype([&](auto* t, std::size_t n) { scale_as_dtype(t, n, factor); });
  }, py::arg("tensors"), py::arg("factor"), "x *= factor for every array, in one fused pass.");

  m.def("accumulate", [](const py::handle& buffers, const py::handle& grads, bool overwrite) {
    auto p = pairs<false>(buffers, grads, "buffers", "grads");
    py::gil_scoped_release release;
    p.each_dtype([&](auto* d, auto* s, std::size_t n) { accumulate(d, s, n, overwrite); });
  }, py::arg("buffers"), py::arg("grads"), py::arg("overwrite"),
  "buffers[k] = grads[k] (overwrite) or buffers[k] += grads[k], in one fused pass.");

  m.def("ema_update", [](const py::handle& shadow, const py::handle& params, double decay) {
    auto p = pairs<false>(shadow, params, "shadow", "params");
    py::gil_scoped_release release;
    p.each_dtype([&](auto* d, auto* s, std::size_t n) { ema_update(d, s, n, decay); });
  }, py::arg("shadow"), py::arg("params"), py::arg("decay"),
  "shadow = decay * shadow + (1 - decay) * params, in one fused pass.");

  m.def("lookahead_update", [](const py::handle& slow, const py::handle& fast, double alpha) {
    auto p = pairs<true>(slow, fast, "slow", "params");
    py::gil_scoped_release release;
    p.each_dtype([&](auto* d, auto* s, std::size_t n) { lookahead_update(d, s, n, alpha); });
  }, py::arg("slow"), py::arg("fast"), py::arg("alpha"),
  "slow += alpha * (fast - slow); fast = slow, in one fused pass.");

  m.def("read_checkpoint", [](const std::string& path) {
    Checkpoint c;
    {
      py::gil_scoped_release release;
      c = read_checkpoint(path);
    }
    py::list arrays;
    for (CheckpointArray& a : c.arrays) {
      // The bytes are handed over, not copied: the array owns the 64-byte-aligned buffer.
      auto* owner = new AlignedVector<unsigned char>(std::move(a.data));
      py::capsule base(owner, [](void* p) { delete static_cast<AlignedVector<unsigned char>*>(p); });
      py::array_t<unsigned char> bytes({py::ssize_t(owner->size())}, {py::ssize_t(1)},
                                       owner->data(), base);
      arrays.append(py::make_tuple(a.name, a.dtype, a.shape, bytes));
    }
    return py::make_tuple(c.version, py::bytes(c.header_json), arrays);
  }, py::arg("path"),
  "The checkpoint reader (every check of docs/checkpoint-format.md): (version, header JSON "
  "bytes, [(name, dtype, shape, uint8 array of the data)]).");

  m.def("write_checkpoint", [](const std::string& path, const py::dict& params) {
    std::vector<CheckpointArrayRef> refs;
    for (auto item : params) {
      const std::string name = item.first.cast<std::string>();
      py::array a = checked_array(item.second, "params['" + name + "']", false);
      std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
      refs.push_back({name, dtype_of(a) == DType::Float32 ? "<f4" : "<f8", shape, a.data(),
                      std::size_t(a.nbytes())});
    }
    write_checkpoint(path, refs);
  }, py::arg("path"), py::arg("params"), "The C++ writer of named float arrays.");

  m.def("write_checkpoint", [](const std::string& path, const py::bytes& header,
                               const py::list& arrays) {
    std::vector<CheckpointArrayRef> refs;
    std::vector<py::array> keep;
    for (const py::handle& entry : arrays) {
      auto [name, dtype, obj] = entry.cast<std::tuple<std::string, std::string, py::object>>();
      if (!py::isinstance<py::array>(obj) ||
          !(py::reinterpret_borrow<py::array>(obj).flags() & py::array::c_style))
        throw py::type_error("write_checkpoint: '" + name + "' is not a C-contiguous array");
      py::array a = py::reinterpret_borrow<py::array>(obj);
      if (std::size_t(a.itemsize()) != checkpoint_itemsize(dtype))
        throw py::type_error("write_checkpoint: '" + name + "' has item size " +
                             std::to_string(a.itemsize()) + ", dtype '" + dtype + "' says otherwise");
      refs.push_back({name, dtype, std::vector<int64_t>(a.shape(), a.shape() + a.ndim()), a.data(),
                      std::size_t(a.nbytes())});
      keep.push_back(std::move(a));
    }
    const std::string head = header;
    // The file's fsync goes through os.fsync, so Python's view of the system call is kept.
    py::object fsync = py::module_::import("os").attr("fsync");
    py::gil_scoped_release release;
    write_checkpoint(path, head, refs, [&](int fd) {
      py::gil_scoped_acquire acquire;
      fsync(fd);
    });
  }, py::arg("path"), py::arg("header"), py::arg("arrays"),
  "The checkpoint writer: the JSON header and [(table name, dtype token, C-contiguous array)], "
  "written atomically (temporary file, os.fsync, rename, fsync of the directory).");
}

}  // namespace dlopt::py_bindings
