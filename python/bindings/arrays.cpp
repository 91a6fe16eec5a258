#include "arrays.hpp"

#include <algorithm>

namespace dlopt::py_bindings {

namespace {
std::string type_name(const py::handle& obj) {
  return py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>();
}
}  // namespace

py::array stored_array(const py::handle& obj, const std::string& what, bool writeable,
                       std::initializer_list<Storage> allowed) {
  if (!py::isinstance<py::array>(obj)) {
    if (py::hasattr(obj, "__cuda_array_interface__"))
      throw py::type_error(what + ": expected a numpy.ndarray, got " + type_name(obj) +
                           ", a CUDA device array: host and device arrays cannot be mixed (an "
                           "optimizer's parameters, gradients and state are all on the host, or "
                           "all on one GPU; clipping and averaging run on the host only)");
    throw py::type_error(what + ": expected a numpy.ndarray, got " + type_name(obj));
  }
  auto a = py::reinterpret_borrow<py::array>(obj);
  const std::optional<Storage> storage = storage_of(a);
  if (!storage || std::find(allowed.begin(), allowed.end(), *storage) == allowed.end()) {
    std::string names;
    for (Storage s : allowed) names += std::string(names.empty() ? "" : ", ") + storage_name(s);
    throw py::type_error(what + ": dtype must be " +
                         (allowed.size() == 2 ? std::string("float32 or float64") : "one of " + names) +
                         ", got " + py::str(a.dtype()).cast<std::string>());
  }
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(what + ": array must be C-contiguous (dlopt works in place and never "
                                 "makes a hidden copy; pass np.ascontiguousarray(...) yourself)");
  if (!(py::detail::array_proxy(a.ptr())->flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_))
    throw py::value_error(what + ": array is not aligned to its dtype");
  if (writeable && !a.writeable())
    throw py::value_error(what + ": array is read-only, but dlopt updates it in place");
  return a;
}

py::array checked_array(const py::handle& obj, const std::string& what, bool writeable) {
  return stored_array(obj, what, writeable, {Storage::Float32, Storage::Float64});
}

namespace {
/// ml_dtypes.bfloat16's dtype (a NumPy user dtype: compared by its type number).
const py::dtype& bfloat16_dtype() {
  static const py::dtype* dtype = new py::dtype(py::dtype::from_args(py::module_::import("ml_dtypes").attr("bfloat16")));
  return *dtype;
}
}  // namespace

std::optional<Storage> storage_of(const py::array& a) {
  const py::dtype d = a.dtype();
  switch (d.kind()) {
    case 'f':
      if (d.itemsize() == 8) return Storage::Float64;
      if (d.itemsize() == 4) return Storage::Float32;
      if (d.itemsize() == 2) return Storage::Float16;
      return std::nullopt;
    case 'i': return d.itemsize() == 1 ? std::optional<Storage>(Storage::Int8) : std::nullopt;
    case 'u': return d.itemsize() == 1 ? std::optional<Storage>(Storage::UInt8) : std::nullopt;
    case 'V':
      if (d.itemsize() == 2 && py::str(d.attr("name")).cast<std::string>() == "bfloat16" &&
          d.num() == bfloat16_dtype().num())
        return Storage::BFloat16;
      return std::nullopt;
    default: return std::nullopt;
  }
}

py::dtype numpy_dtype(Storage s) {
  switch (s) {
    case Storage::Float64: return py::dtype::of<double>();
    case Storage::Float32: return py::dtype::of<float>();
    case Storage::BFloat16: return bfloat16_dtype();
    case Storage::Float16: return py::dtype("float16");
    case Storage::Int8: return py::dtype::of<int8_t>();
    case Storage::UInt8: return py::dtype::of<uint8_t>();
  }
  return py::dtype::of<float>();
}

DType dtype_of(const py::array& a) {
  return a.dtype().equal(py::dtype::of<float>()) ? DType::Float32 : DType::Float64;
}

const char* dtype_name(DType d) { return d == DType::Float32 ? "float32" : "float64"; }

py::array checked_like(const py::handle& obj, const py::array& like, const std::string& what,
                       const std::string& like_what, bool writeable) {
  py::array a = checked_array(obj, what, writeable);
  if (dtype_of(a) != dtype_of(like))
    throw py::type_error(what + ": dtype " + dtype_name(dtype_of(a)) + " does not match " +
                         like_what + "'s " + dtype_name(dtype_of(like)));
  const bool same_shape =
      a.ndim() == like.ndim() && std::equal(a.shape(), a.shape() + a.ndim(), like.shape());
  if (!same_shape)
    throw py::value_error(what + ": shape " + py::str(a.attr("shape")).cast<std::string>() +
                          " does not match " + like_what + "'s " +
                          py::str(like.attr("shape")).cast<std::string>());
  return a;
}

Range range_of(const py::array& a, std::string what) {
  const char* begin = static_cast<const char*>(a.data());
  return {begin, begin + a.nbytes(), std::move(what)};
}

void require_disjoint(std::vector<Range> written, const std::vector<Range>& read) {
  auto overlap = [](const Range& a, const Range& b) {
    return a.begin < b.end && b.begin < a.end && a.begin != a.end && b.begin != b.end;
  };
  std::sort(written.begin(), written.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  // Compared with the range reaching furthest so far, so an empty range in between hides nothing.
  std::size_t furthest = 0;
  for (std::size_t i = 1; i < written.size(); ++i) {
    if (overlap(written[furthest], written[i]))
      throw py::value_error(written[i].what + " shares memory with " + written[furthest].what +
                            " (a parameter given twice?)");
    if (written[i].end > written[furthest].end || written[furthest].begin == written[furthest].end)
      furthest = i;
  }
  sort_nonempty(written);
  for (const Range& r : read)
    if (const Range* hit = find_overlap(written, r.begin, r.end))
      throw py::value_error(r.what + " shares memory with " + hit->what);
}

void sort_nonempty(std::vector<Range>& ranges) {
  ranges.erase(std::remove_if(ranges.begin(), ranges.end(), [](const Range& r) { return r.begin == r.end; }),
               ranges.end());
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
}

const Range* find_overlap(const std::vector<Range>& sorted, const char* begin, const char* end) {
  if (begin == end) return nullptr;
  // Disjoint and sorted by start, so also by end: only the last range starting at or before `begin`
  // and the first starting after it can overlap.
  auto it = std::upper_bound(sorted.begin(), sorted.end(), begin,
                             [](const char* p, const Range& w) { return p < w.begin; });
  if (it != sorted.begin() && begin < std::prev(it)->end) return &*std::prev(it);
  if (it != sorted.end() && it->begin < end) return &*it;
  return nullptr;
}

}  // namespace dlopt::py_bindings
