#pragma once
/// @file mpi.hpp
/// Data-parallel gradients and ZeRO-1 sharded optimizer state over MPI, for C++ applications
/// (target dlopt::dlopt_mpi; Python: dlopt.distributed, the same layout and the same sums).
///
/// @code
///   std::vector<float> w(1 << 20), g(1 << 20);
///   dlopt::distributed::ShardedOptimizer<dlopt::AdamRule> opt(MPI_COMM_WORLD, {{w.data(), 1 << 20}}, {.lr = 1e-3});
///   opt.step({g.data()});   // mean of the ranks' g, this rank's shard stepped, w all-gathered
/// @endcode
///
/// The mean over ranks is added elementwise in rank order (MPI moves the bytes: MPI_Alltoallv
/// then MPI_Allgatherv, a ring all-reduce's two halves), so it does not depend on the bucket size
/// or on how MPI would have ordered a reduction; the shards are cut by layout.hpp, so a sharded
/// step is bitwise equal to Optimizer<Rule, T>::step on the averaged gradients.
///
/// Every call checks its arguments on each rank and agrees across ranks (one small MPI_Allgather)
/// before any data moves: a bad argument on any rank throws dlopt::InvalidArgument on every rank.

#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dlopt/core/span.hpp"
#include "dlopt/distributed/layout.hpp"
#include "dlopt/optim/optimizer.hpp"

namespace dlopt::distributed {

/// Bytes per fused bucket of the collectives.
constexpr std::size_t kDefaultBucketBytes = std::size_t(25) << 20;

namespace detail {

/// Throws InvalidArgument on every rank of `comm` if any rank's `error` is non-empty (its message,
/// prefixed with the rank) or if the ranks' `signature`s differ (`what` names the call).
void agree(MPI_Comm comm, const std::string& error, uint64_t signature, const std::string& what);

/// Rank r receives the mean over ranks of its part (counts[r] elements, parts consecutive in
/// `send`) into `out`; `scratch` is resized as needed. Instantiated for float and double.
template <class T>
void reduce_scatter_mean(MPI_Comm comm, const T* send, const std::vector<int64_t>& counts, T* out,
                         std::vector<T>& scratch);

/// Every rank's part of `buf` (consecutive parts of counts[r] elements) to every rank.
template <class T>
void allgather_inplace(MPI_Comm comm, T* buf, const std::vector<int64_t>& counts);

/// FNV-1a over bytes: the signatures compared across ranks.
inline uint64_t hash_bytes(uint64_t h, const void* data, std::size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}
template <class V>
uint64_t hash_value(uint64_t h, const V& v) {
  return hash_bytes(h, &v, sizeof v);
}

/// A contiguous range [begin, end) of a flat vector laid over tensors, copied in or out.
template <class T>
struct FlatSpace {
  std::vector<T*> data;
  std::vector<int64_t> offsets{0};
  template <class F>
  void for_pieces(int64_t a, int64_t b, F&& f) const {
    for (std::size_t i = 0; i + 1 < offsets.size() && a < b; ++i) {
      if (offsets[i + 1] <= a) continue;
      const int64_t end = b < offsets[i + 1] ? b : offsets[i + 1];
      f(i, a - offsets[i], end - offsets[i]);
      a = end;
    }
  }
};

}  // namespace detail

/// Replaces each tensor by its mean over the ranks of `comm`, in place, in fused buckets. Every rank
/// passes tensors of the same sizes in the same order (checked).
template <class T>
void allreduce_mean(MPI_Comm comm, const std::vector<Span<T>>& tensors, std::size_t bucket_bytes = kDefaultBucketBytes);

/// ZeRO-1: every rank keeps the full parameters (caller-owned, as for Optimizer) and steps only its
/// shard of them, holding only that shard's state. T is float or double.
template <class Rule, class T = float>
class ShardedOptimizer {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "float or double parameters");

 public:
  using Config = typename Rule::Config;  ///< the rule's hyperparameters

  /// Steps `params` (every rank passes the same shapes) with this rank's shard of the state;
  /// gradients are averaged over `comm` in buckets of about `bucket_bytes`. Collective.
  ShardedOptimizer(MPI_Comm comm, std::vector<ParamView<T>> params, Config config = {},
                   StorageOptions options = {}, std::size_t bucket_bytes = kDefaultBucketBytes)
      : comm_(comm), params_(std::move(params)), bucket_bytes_(bucket_bytes) {
    if (comm == MPI_COMM_NULL) throw InvalidArgument("comm: MPI_COMM_NULL");
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &nranks_);
    std::string error;
    uint64_t sig = detail::hash_bytes(1469598103934665603ULL, Rule::name, std::char_traits<char>::length(Rule::name));
    try {
      config.validate();
      if (bucket_bytes_ < sizeof(T)) throw InvalidArgument("bucket_bytes: too small");
      for (std::size_t i = 0; i < params_.size(); ++i) {
        if (params_[i].size < 0 || (params_[i].size > 0 && !params_[i].data))
          throw InvalidArgument("params[" + std::to_string(i) + "]: null or negative-size buffer");
        sig = detail::hash_value(detail::hash_value(sig, params_[i].size), params_[i].rows);
      }
      sig = hash_config(sig, config);
    } catch (const std::exception& e) {
      error = e.what();
    }
    detail::agree(comm_, error, sig, "ShardedOptimizer: parameters and hyperparameters");

    // The layout: native float/double state never draws random bits, other storage may.
    const bool split = splits_elementwise<Rule> && (!options.stochastic_rounding || options.state_dtype == StateDType::Default);
    std::vector<int64_t> sizes;
    for (const auto& p : params_) {
      sizes.push_back(p.size);
      space_.data.push_back(p.data);
      space_.offsets.push_back(space_.offsets.back() + p.size);
    }
    bounds_ = shard_bounds(sizes, std::vector<bool>(sizes.size(), split), nranks_);
    const int64_t lo = bounds_[std::size_t(rank_)], hi = bounds_[std::size_t(rank_) + 1];
    shard_.resize(std::size_t(hi - lo));
    // Non-owned tensors stay in the local optimizer as empty placeholders (null gradient: never
    // stepped), so tensor indices are those of the unsharded optimizer.
    std::vector<ParamView<T>> local(params_.size(), ParamView<T>{nullptr, 0, 0});
    local_grads_.assign(params_.size(), nullptr);
    int64_t pos = 0;
    space_.for_pieces(lo, hi, [&](std::size_t i, int64_t s, int64_t e) {
      const bool whole = s == 0 && e == params_[i].size;
      // a whole tensor keeps its shape (matrix rules); a piece of one is a flat run of elements
      local[i] = whole ? params_[i] : ParamView<T>{params_[i].data + s, e - s, 0};
      local_grads_[i] = shard_.data() + pos;
      pos += e - s;
    });
    if (rank_ == 0)  // zero-size tensors lie in no range: rank 0 steps them (their counters)
      for (std::size_t i = 0; i < params_.size(); ++i)
        if (params_[i].size == 0) local[i] = params_[i], local_grads_[i] = shard_.data();
    local_ = std::make_unique<Optimizer<Rule, T>>(std::move(local), config, options);
  }

  /// One step from this rank's gradients (one per parameter, full size; not modified).
  void step(const std::vector<const T*>& grads) {
    std::string error;
    try {
      if (grads.size() != params_.size())
        throw InvalidArgument("grads: expected " + std::to_string(params_.size()) + " gradients, got " +
                              std::to_string(grads.size()));
      for (std::size_t i = 0; i < grads.size(); ++i)
        if (!grads[i] && params_[i].size > 0) throw InvalidArgument("grads[" + std::to_string(i) + "]: null");
      local_->config().validate();
    } catch (const std::exception& e) {
      error = e.what();
    }
    detail::agree(comm_, error, hash_config(0, local_->config()), "ShardedOptimizer::step: hyperparameters");
    detail::FlatSpace<const T> gspace;
    gspace.offsets = space_.offsets;
    gspace.data.assign(grads.begin(), grads.end());
    for_chunks([&](const std::vector<std::pair<int64_t, int64_t>>& ranges, int64_t k) {
      std::vector<int64_t> counts;
      int64_t total = 0;
      for (auto [a, b] : ranges) counts.push_back(b - a), total += b - a;
      buf_.resize(std::size_t(total));
      T* dst = buf_.data();
      for (auto [a, b] : ranges)
        gspace.for_pieces(a, b, [&](std::size_t i, int64_t s, int64_t e) {
          std::copy(gspace.data[i] + s, gspace.data[i] + e, dst);
          dst += e - s;
        });
      detail::reduce_scatter_mean(comm_, buf_.data(), counts, shard_.data() + k, scratch_);
    });
    local_->step(local_grads_);
    if (nranks_ > 1) allgather_params();
  }

  Optimizer<Rule, T>& local() { return *local_; }  ///< this rank's optimizer (its shard's state)
  Config& config() { return local_->config(); }  ///< the live hyperparameters (set the lr between steps)
  const std::vector<int64_t>& bounds() const { return bounds_; }  ///< rank r owns [bounds[r], bounds[r+1])
  int rank() const { return rank_; }     ///< this rank in `comm`
  int size() const { return nranks_; }   ///< ranks in `comm`

 private:
  static uint64_t hash_config(uint64_t h, Config c) {
    c.visit([&](const char*, auto& v) { h = detail::hash_value(h, double(v)); });
    return h;
  }

  /// Bucket k holds the k-th chunk of every rank's range, so each bucket's reduce-scatter gives
  /// every rank an equal part.
  template <class F>
  void for_chunks(F&& f) {
    const int64_t per_rank = std::max<int64_t>(1, int64_t(bucket_bytes_ / sizeof(T)) / nranks_);
    int64_t longest = 0;
    for (int r = 0; r < nranks_; ++r) longest = std::max(longest, bounds_[std::size_t(r) + 1] - bounds_[std::size_t(r)]);
    std::vector<std::pair<int64_t, int64_t>> ranges(static_cast<std::size_t>(nranks_));
    for (int64_t k = 0; k < std::max<int64_t>(longest, 1); k += per_rank) {
      for (int r = 0; r < nranks_; ++r) {
        const int64_t end = bounds_[std::size_t(r) + 1];
        ranges[std::size_t(r)] = {std::min(bounds_[std::size_t(r)] + k, end), std::min(bounds_[std::size_t(r)] + k + per_rank, end)};
      }
      f(ranges, k);
    }
  }

  void allgather_params() {
    for_chunks([&](const std::vector<std::pair<int64_t, int64_t>>& ranges, int64_t) {
      std::vector<int64_t> counts;
      int64_t total = 0, start = 0;
      for (int r = 0; r < nranks_; ++r) {
        if (r == rank_) start = total;
        counts.push_back(ranges[std::size_t(r)].second - ranges[std::size_t(r)].first);
        total += counts.back();
      }
      buf_.resize(std::size_t(total));
      T* dst = buf_.data() + start;
      auto [a, b] = ranges[std::size_t(rank_)];
      space_.for_pieces(a, b, [&](std::size_t i, int64_t s, int64_t e) {
        std::copy(space_.data[i] + s, space_.data[i] + e, dst);
        dst += e - s;
      });
      detail::allgather_inplace(comm_, buf_.data(), counts);
      const T* src = buf_.data();
      for (int r = 0; r < nranks_; ++r) {
        auto [ra, rb] = ranges[std::size_t(r)];
        if (r != rank_)
          space_.for_pieces(ra, rb, [&](std::size_t i, int64_t s, int64_t e) {
            std::copy(src + (s + space_.offsets[i] - ra), src + (e + space_.offsets[i] - ra), space_.data[i] + s);
          });
        src += rb - ra;
      }
    });
  }

  MPI_Comm comm_;
  int rank_ = 0, nranks_ = 1;
  std::vector<ParamView<T>> params_;
  std::size_t bucket_bytes_;
  detail::FlatSpace<T> space_;
  std::vector<int64_t> bounds_;
  std::vector<T> shard_, buf_, scratch_;
  std::vector<const T*> local_grads_;
  std::unique_ptr<Optimizer<Rule, T>> local_;
};

}  // namespace dlopt::distributed
