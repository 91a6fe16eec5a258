#pragma once
// Checks that NumPy arrays can be used in place, with messages that name the argument.
// dlopt never copies or converts an array it is asked to read or update: a mismatch is an error.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "dlopt/core/storage.hpp"

namespace dlopt::py_bindings {

namespace py = pybind11;

enum class DType { Float32, Float64 };

/// The array behind `obj`, which must be a C-contiguous, aligned float32/float64 ndarray
/// (and writeable when `writeable`). Throws TypeError / ValueError naming `what`.
py::array checked_array(const py::handle& obj, const std::string& what, bool writeable);

/// The array behind `obj`, C-contiguous, aligned (writeable when asked) and stored in one of
/// `allowed` (bfloat16 is ml_dtypes.bfloat16). Throws TypeError / ValueError naming `what`.
py::array stored_array(const py::handle& obj, const std::string& what, bool writeable,
                       std::initializer_list<Storage> allowed);

/// The storage of an array's dtype, if dlopt has one for it.
std::optional<Storage> storage_of(const py::array& a);
/// The NumPy dtype of a storage (bfloat16: ml_dtypes.bfloat16, imported on first use).
py::dtype numpy_dtype(Storage s);

/// dtype of an array already accepted by checked_array.
DType dtype_of(const py::array& a);
const char* dtype_name(DType d);

/// `obj` must be an array like `like`: same dtype and shape (what/like_what name both in errors).
py::array checked_like(const py::handle& obj, const py::array& like, const std::string& what,
                       const std::string& like_what, bool writeable);

/// A memory range with the name of the argument it belongs to.
struct Range {
  const char* begin;
  const char* end;
  std::string what;
};
Range range_of(const py::array& a, std::string what);

/// Throws ValueError if any two of `written` overlap, or any of `read` overlaps one of `written`.
void require_disjoint(std::vector<Range> written, const std::vector<Range>& read);

/// Sorts ranges by start and drops the empty ones, which overlap nothing (and would stand between
/// a range and its neighbour in a search): the form `find_overlap` searches.
void sort_nonempty(std::vector<Range>& ranges);

/// The range of `sorted` (disjoint, from sort_nonempty) that overlaps [begin, end), or nullptr.
const Range* find_overlap(const std::vector<Range>& sorted, const char* begin, const char* end);

}  // namespace dlopt::py_bindings
