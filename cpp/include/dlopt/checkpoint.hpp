#pragma once
/// @file checkpoint.hpp
/// Reader and writer of dlopt checkpoint files (docs/checkpoint-format.md): a 64-byte prelude,
/// a binary table of named arrays, a JSON header and 64-byte-aligned raw array data, with CRC-32
/// checksums of every part. This is the only implementation of the format: the Python
/// `dlopt.save` / `dlopt.load` encode their tree of values as the JSON header and call these
/// functions (through `_core`) for everything binary, so the checks and messages are the same.
///
/// @code
///   dlopt::Checkpoint ckpt = dlopt::read_checkpoint("model.dlopt");
///   const dlopt::CheckpointArray& w = ckpt.at("params/fc.weight");
///   const float* data = w.as<float>();   // throws unless w.dtype == "<f4"
/// @endcode

#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "dlopt/core/aligned.hpp"

namespace dlopt {

/// A file that is not a valid dlopt checkpoint (truncated, corrupted, wrong version), or a
/// failed read/write; the message says which.
struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A failed system call (open, read, write, fsync, rename) on `path`; `code` is its errno.
/// Python sees it as the OSError of that errno (FileNotFoundError, PermissionError, ...).
struct CheckpointIOError : CheckpointError {
  /// The message `what`, the call's errno and the file it was about.
  CheckpointIOError(const std::string& what, int code, std::string path)
      : CheckpointError(what), code(code), path(std::move(path)) {}
  int code;          ///< errno of the failed call
  std::string path;  ///< the file
};

/// Format version written by this build and the only one it reads.
constexpr uint32_t kCheckpointVersion = 1;

/// Item size in bytes of a dtype as the array table names it: NumPy's little-endian or
/// byte-order-free dtype string of a boolean or number ("|b1", "<i8", "<u2", "<f4", "<c8", ...)
/// or "bfloat16" (ml_dtypes.bfloat16); 0 for anything the format does not store.
std::size_t checkpoint_itemsize(const std::string& dtype);

/// CRC-32 (IEEE 802.3, as zlib.crc32) of `size` bytes, continuing from `crc`.
uint32_t crc32(const void* data, std::size_t size, uint32_t crc = 0);

/// One named array of a checkpoint, owning its bytes (64-byte aligned).
struct CheckpointArray {
  std::string name;             ///< e.g. "params/fc.weight", "optimizer/state/fc.weight/exp_avg"
  std::string dtype;            ///< NumPy's dtype string: "<f4", "<f8", "<i8", "|b1", ...
  std::vector<int64_t> shape;         ///< the dimensions (empty: a 0-d array, one element)
  AlignedVector<unsigned char> data;  ///< the elements in C order (row-major)

  /// Elements: the product of the shape.
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  /// The data as T; throws CheckpointError unless dtype is T's ("<f4" float, "<f8" double,
  /// "<i4" int32_t, "<i8" int64_t).
  template <class T>
  const T* as() const {
    if (dtype != dtype_string<T>())
      throw CheckpointError("array '" + name + "' has dtype " + dtype + ", not " + dtype_string<T>());
    return reinterpret_cast<const T*>(data.data());
  }
  /// NumPy's dtype string of T (defined for float, double, int32_t and int64_t only).
  template <class T>
  static const char* dtype_string();
};

/// float is "<f4".
template <> inline const char* CheckpointArray::dtype_string<float>() { return "<f4"; }
/// double is "<f8".
template <> inline const char* CheckpointArray::dtype_string<double>() { return "<f8"; }
/// int32_t is "<i4".
template <> inline const char* CheckpointArray::dtype_string<int32_t>() { return "<i4"; }
/// int64_t is "<i8".
template <> inline const char* CheckpointArray::dtype_string<int64_t>() { return "<i8"; }

/// A whole checkpoint: the format version, the JSON header text and every array.
struct Checkpoint {
  uint32_t version = kCheckpointVersion;  ///< the format version (kCheckpointVersion)
  std::string header_json;                ///< the JSON header (docs/checkpoint-format.md)
  std::vector<CheckpointArray> arrays;    ///< every array, in the file's table order

  /// The array called `name`, or nullptr.
  const CheckpointArray* find(const std::string& name) const {
    for (const CheckpointArray& a : arrays)
      if (a.name == name) return &a;
    return nullptr;
  }
  /// The array called `name`; throws CheckpointError naming it when absent.
  const CheckpointArray& at(const std::string& name) const {
    if (const CheckpointArray* a = find(name)) return *a;
    throw CheckpointError("checkpoint has no array '" + name + "'");
  }
};

/// Reads and verifies a checkpoint (size, magic, version, every checksum, every bound).
Checkpoint read_checkpoint(const std::string& path);

/// A named array to write, owned by the caller.
struct CheckpointArrayRef {
  std::string name;   ///< the table name ("params/<name>" when written by the params writer)
  std::string dtype;  ///< "<f4", "<f8", ... (see checkpoint_itemsize)
  std::vector<int64_t> shape;  ///< the dimensions
  const void* data;            ///< the elements in C order (the caller keeps them alive until written)
  std::size_t nbytes;          ///< bytes at data: the product of the shape times the dtype's item size
};

/// Convenience: a named float/double buffer of the given shape.
template <class T>
CheckpointArrayRef named_array(std::string name, const T* data, std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return {std::move(name), CheckpointArray::dtype_string<T>(), std::move(shape), data,
          std::size_t(n) * sizeof(T)};
}

/// Writes named parameters as a checkpoint that `dlopt.load` returns as {"params": {name: array}}.
/// Atomic: written to a temporary file in the same directory, flushed, fsynced and renamed over
/// `path` (then the directory is fsynced), so a crash leaves either the old file or the new one.
void write_checkpoint(const std::string& path, const std::vector<CheckpointArrayRef>& params);

/// Writes a checkpoint whose JSON header is `header_json` and whose array table holds `arrays`
/// under their own names (checked first: a known dtype, bytes = shape x item size, names unique),
/// atomically as above. `sync_file(fd)` replaces the fsync of the temporary file (the Python
/// binding passes os.fsync); an exception from it removes the temporary file and propagates.
void write_checkpoint(const std::string& path, const std::string& header_json,
                      const std::vector<CheckpointArrayRef>& arrays,
                      const std::function<void(int)>& sync_file = {});

}  // namespace dlopt
