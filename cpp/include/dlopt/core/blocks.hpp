#pragma once
/// @file core/blocks.hpp
/// The block split every multi-tensor pass uses, written once: the tensors of a call are cut into
/// fixed-size blocks numbered across tensors, so block boundaries depend only on the sizes (never
/// on the thread count or the device) and anything combined in block order is reproducible.
/// cpu::run (4K blocks), the clipping / averaging passes (16K blocks, cpp/src/cpu/blocks.hpp) and
/// the CUDA step kernel (4K chunks, dlopt/cuda/multi_tensor.hpp) all number and find blocks here.
/// Internal to dlopt.

#include <cstddef>
#include <cstdint>

#include "dlopt/core/device.hpp"

namespace dlopt::blocks {

/// The number of Block-element blocks of an n-element tensor.
template <int64_t Block>
DLOPT_HD int64_t count_of(int64_t n) {
  return (n + Block - 1) / Block;
}

/// Numbers the Block-element blocks of `count` tensors: first[k] = the number of tensor k's first
/// block, first[count] = the total, which is returned. `first` holds count + 1 entries.
template <int64_t Block, class SizeOf>
int64_t number(std::size_t count, const SizeOf& size_of, int64_t* first) {
  first[0] = 0;
  for (std::size_t k = 0; k < count; ++k) first[k + 1] = first[k] + count_of<Block>(int64_t(size_of(k)));
  return first[count];
}

/// The tensor holding block b (0 <= b < first[count]): the largest k < count with first[k] <= b
/// (tensors without blocks are skipped). Invariant of the search: first[lo] <= b < first[hi].
DLOPT_HD std::size_t tensor_of(const int64_t* first, std::size_t count, int64_t b) {
  std::size_t lo = 0, hi = count;
  while (hi - lo > 1) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (first[mid] <= b) lo = mid;
    else hi = mid;
  }
  return lo;
}

}  // namespace dlopt::blocks
