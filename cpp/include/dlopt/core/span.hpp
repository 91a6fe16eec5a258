#pragma once
/// @file span.hpp
/// Span<T>: a caller-owned contiguous buffer (pointer + element count), the argument type of the
/// multi-tensor utilities (clipping, accumulation, averaging).

#include <cstdint>

namespace dlopt {

/// A contiguous buffer of `size` elements owned by the caller.
template <class T>
struct Span {
  T* data = nullptr;  ///< the first element
  int64_t size = 0;  ///< the number of elements
};

}  // namespace dlopt
