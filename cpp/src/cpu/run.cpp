// The CPU kernel: a loop over Rule::update, vectorised with `omp simd` and split across threads in
// fixed-size blocks. Block boundaries depend only on tensor sizes, never on the thread count, so
// every element takes the same instruction path and results are bitwise reproducible.

#include <algorithm>
#include <vector>

#include "dlopt/core/step.hpp"
#include "dlopt/optim/registry.hpp"

namespace dlopt::cpu {
namespace {

// 4096 elements: a multiple of every SIMD width (and unroll), large enough that a block amortises
// scheduling, small enough that 16K-64K-element steps of the sqrt/div-heavy rules split across
// threads (measured with dlopt-bench: Adam at 2e4-1e5 elements 1.2-1.6x faster than 16K blocks).
constexpr int64_t kBlock = int64_t(1) << 12;
// Below this many elements in a step, waking threads costs more than it saves (tiny steps run on
// the calling thread and never touch the OpenMP pool).
constexpr int64_t kParallelMin = int64_t(1) << 14;

template <class Rule, class T>
void run_block(const Segment<Rule, T>& seg, int64_t begin, int64_t len) {
  const auto c = seg.coeffs;
  T* __restrict p = seg.param + begin;
  const T* __restrict g = seg.grad + begin;
  T* s[num_slots<Rule> + 1] = {};
  for (std::size_t k = 0; k < num_slots<Rule>; ++k)
    s[k] = seg.slots[k] ? seg.slots[k] + begin : nullptr;
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) Rule::update(c, i, p, g, s);
}

}  // namespace

template <class Rule, class T>
void run(const Segment<Rule, T>* segments, std::size_t count) {
  // first_block[k]: index of segment k's first block; blocks are numbered across all segments.
  thread_local std::vector<int64_t> first_block_storage;
  std::vector<int64_t>& first_block = first_block_storage;
  first_block.resize(count + 1);
  int64_t total = 0;
  first_block[0] = 0;
  for (std::size_t k = 0; k < count; ++k) {
    total += segments[k].size;
    first_block[k + 1] = first_block[k] + (segments[k].size + kBlock - 1) / kBlock;
  }
  const int64_t blocks = first_block[count];
  const int64_t* fb = first_block.data();

  auto do_block = [segments, fb, count](int64_t b) {
    const std::size_t k = std::size_t(std::upper_bound(fb, fb + count + 1, b) - fb - 1);
    const int64_t begin = (b - fb[k]) * kBlock;
    run_block(segments[k], begin, std::min(kBlock, segments[k].size - begin));
  };
  if (total < kParallelMin || get_num_threads() == 1) {
    for (int64_t b = 0; b < blocks; ++b) do_block(b);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) do_block(b);
  }
}

#define DLOPT_INSTANTIATE_RUN(Rule)                                          \
  template void run<Rule, float>(const Segment<Rule, float>*, std::size_t); \
  template void run<Rule, double>(const Segment<Rule, double>*, std::size_t);
DLOPT_FOR_EACH_RULE(DLOPT_INSTANTIATE_RUN)
#undef DLOPT_INSTANTIATE_RUN

}  // namespace dlopt::cpu
