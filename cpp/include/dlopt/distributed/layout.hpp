#pragma once
/// @file layout.hpp
/// Where ZeRO-1 cuts the optimizer state between ranks: the one layout rule, used by the Python
/// ZeroRedundancyOptimizer (through _core.shard_bounds) and the C++ ShardedOptimizer alike.
///
/// The parameters of one dtype are laid end to end as one flat vector and cut into N consecutive
/// ranges, one per rank, each near total * r / N. A cut inside a tensor falls on a multiple of
/// kShardAlign elements from the tensor's start: a boundary of the CPU step's 4096-element blocks,
/// of its 256-element staging chunks and of the 256-element blocks of 8-bit state, so each rank's
/// part of a tensor is processed exactly as in the unsharded step. Tensors whose update is not
/// elementwise (per-tensor reductions such as LAMB's norms, matrix rules such as Muon) or draws
/// random bits keyed by the element's index in its tensor (stochastic rounding) are never cut: the
/// boundary moves to the nearer end of the tensor, and one rank steps the whole tensor.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dlopt/core/error.hpp"

namespace dlopt::distributed {

/// Elements between the possible cuts inside a tensor.
constexpr int64_t kShardAlign = 4096;

/// Whether a rule's step may be cut inside a tensor: elementwise, no per-tensor reduction.
template <class Rule>
constexpr bool splits_elementwise = Rule::reductions == 0 && !Rule::matrix;

/// The N + 1 boundaries of the ranks' ranges over tensors of `sizes` laid end to end: rank r owns
/// [bounds[r], bounds[r + 1]). `splittable[i]` says whether tensor i may be cut inside.
inline std::vector<int64_t> shard_bounds(const std::vector<int64_t>& sizes, const std::vector<bool>& splittable,
                                         int nranks) {
  if (nranks < 1) throw InvalidArgument("shard_bounds: nranks must be >= 1");
  if (splittable.size() != sizes.size()) throw InvalidArgument("shard_bounds: one splittable flag per tensor");
  std::vector<int64_t> offsets(sizes.size() + 1, 0);
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] < 0) throw InvalidArgument("shard_bounds: negative tensor size");
    offsets[i + 1] = offsets[i] + sizes[i];
  }
  const int64_t total = offsets.back();
  std::vector<int64_t> bounds(std::size_t(nranks) + 1, 0);
  bounds[std::size_t(nranks)] = total;
  std::size_t i = 0;
  for (int r = 1; r < nranks; ++r) {
    // total * r / N without overflow
    const int64_t target = (total / nranks) * r + (total % nranks) * r / nranks;
    while (i < sizes.size() && offsets[i + 1] <= target) ++i;  // tensor i holds element `target`
    int64_t cut = total;
    if (i < sizes.size()) {
      const int64_t lo = offsets[i], hi = offsets[i + 1];
      if (splittable[i]) {
        cut = lo + (target - lo + kShardAlign / 2) / kShardAlign * kShardAlign;
        if (cut > hi) cut = hi;
      } else {
        cut = target - lo <= hi - target ? lo : hi;
      }
    }
    bounds[std::size_t(r)] = cut < bounds[std::size_t(r) - 1] ? bounds[std::size_t(r) - 1] : cut;
  }
  return bounds;
}

}  // namespace dlopt::distributed
