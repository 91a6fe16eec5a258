#pragma once
/// @file aligned.hpp
/// A std::vector allocator that aligns to cache lines, so SIMD loads of state never split lines.

#include <cstddef>
#include <new>
#include <vector>

namespace dlopt {

/// An allocator of memory aligned to `Alignment` bytes (a cache line by default), for std::vector.
template <class T, std::size_t Alignment = 64>
struct AlignedAllocator {
  using value_type = T;  ///< the element type
  /// The same allocator for elements of type U.
  template <class U>
  struct rebind {
    using other = AlignedAllocator<U, Alignment>;  ///< the allocator of U
  };
  AlignedAllocator() = default;
  /// Converts from the allocator of another type (stateless).
  template <class U>
  AlignedAllocator(const AlignedAllocator<U, Alignment>&) {}
  /// Memory for n elements, aligned to `Alignment` bytes.
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(Alignment)));
  }
  /// Frees what allocate returned.
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(Alignment)); }
  /// Stateless: all are equal.
  template <class U>
  bool operator==(const AlignedAllocator<U, Alignment>&) const { return true; }
  /// Stateless: never unequal.
  template <class U>
  bool operator!=(const AlignedAllocator<U, Alignment>&) const { return false; }
};

/// A std::vector whose data is cache-line aligned (64 bytes).
template <class T>
using AlignedVector = std::vector<T, AlignedAllocator<T>>;

}  // namespace dlopt
