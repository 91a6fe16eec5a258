#pragma once
// Internal: the CPU walker over the block split of dlopt/core/blocks.hpp, shared by cpu::run
// (4K blocks), the clipping and the averaging passes (16K blocks).

#include <algorithm>
#include <cstdint>
#include <vector>

#include "dlopt/core/blocks.hpp"
#include "dlopt/core/step.hpp"

namespace dlopt::cpu::detail {

/// Numbers the Block-element blocks of `count` tensors into `first` (count + 1 entries, see
/// blocks::number; the caller keeps it to combine per-block results in block order) and calls
/// f(b, k, begin, len) for every block b of tensor k: one OpenMP `parallel for` when the tensors
/// hold at least ParallelMin elements (and more than one thread is set), else on the calling thread.
template <int64_t Block, int64_t ParallelMin, class SizeOf, class F>
void for_each_block(std::size_t count, const SizeOf& size_of, std::vector<int64_t>& first, const F& f) {
  first.resize(count + 1);
  const int64_t blocks = blocks::number<Block>(count, size_of, first.data());
  int64_t total = 0;
  for (std::size_t k = 0; k < count; ++k) total += size_of(k);
  const int64_t* fb = first.data();
  auto one = [&](int64_t b) {
    const std::size_t k = blocks::tensor_of(fb, count, b);
    const int64_t begin = (b - fb[k]) * Block;
    f(b, k, begin, std::min(Block, int64_t(size_of(k)) - begin));
  };
  if (total < ParallelMin || get_num_threads() == 1) {
    for (int64_t b = 0; b < blocks; ++b) one(b);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) one(b);
  }
}

// The clipping and averaging passes: 16K-element blocks, parallel from 64K elements.
constexpr int64_t kPassBlock = int64_t(1) << 14;
constexpr int64_t kPassParallelMin = int64_t(1) << 16;

template <class SizeOf, class F>
void for_each_pass_block(std::size_t count, const SizeOf& size_of, std::vector<int64_t>& first, const F& f) {
  for_each_block<kPassBlock, kPassParallelMin>(count, size_of, first, f);
}

}  // namespace dlopt::cpu::detail
