#pragma once
// Internal: the fixed-block split shared by the multi-tensor utilities (clip.cpp, average.cpp).
// Like cpu::run, every tensor is cut into 16K-element blocks numbered across all tensors; block
// boundaries depend only on tensor sizes, so per-block results (and anything combined from them
// in block order) are bitwise identical for any thread count.

#include <algorithm>
#include <cstdint>
#include <vector>

#include "dlopt/core/step.hpp"

namespace dlopt::cpu::detail {

constexpr int64_t kBlock = int64_t(1) << 14;
constexpr int64_t kParallelMin = int64_t(1) << 16;

/// Block layout of `count` tensors of the given sizes: first[k] is tensor k's first block.
struct BlockPlan {
  std::vector<int64_t> first;
  int64_t elements = 0;
  int64_t blocks() const { return first.back(); }
};

template <class SizeOf>
BlockPlan plan_blocks(std::size_t count, SizeOf size_of) {
  BlockPlan plan;
  plan.first.resize(count + 1);
  plan.first[0] = 0;
  for (std::size_t k = 0; k < count; ++k) {
    const int64_t n = size_of(k);
    plan.elements += n;
    plan.first[k + 1] = plan.first[k] + (n + kBlock - 1) / kBlock;
  }
  return plan;
}

/// Calls f(tensor, begin, length, block) for every block, in parallel for large totals.
template <class SizeOf, class F>
void for_each_block(const BlockPlan& plan, SizeOf size_of, F f) {
  const int64_t blocks = plan.blocks();
  const int64_t* fb = plan.first.data();
  const std::size_t count = plan.first.size() - 1;
  auto one = [&](int64_t b) {
    const std::size_t k = std::size_t(std::upper_bound(fb, fb + count + 1, b) - fb - 1);
    const int64_t begin = (b - fb[k]) * kBlock;
    f(k, begin, std::min(kBlock, size_of(k) - begin), b);
  };
  if (plan.elements < kParallelMin || get_num_threads() == 1) {
    for (int64_t b = 0; b < blocks; ++b) one(b);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) one(b);
  }
}

}  // namespace dlopt::cpu::detail
