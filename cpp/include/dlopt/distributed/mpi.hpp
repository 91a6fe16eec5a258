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
/// The mean over ranks is added elementwise in rank order (MPI moves the bytes: point-to-point
/// messages of the gradients' and parameters' pieces, in place, for the sharded step; MPI_Alltoallv
/// then MPI_Allgatherv for allreduce_mean), so it does not depend on the bucket size or on how MPI
/// would have ordered a reduction; the shards are cut by layout.hpp, so a sharded step is bitwise
/// equal to Optimizer<Rule, T>::step on the averaged gradients. state_dict() gathers the full state
/// on one rank and load_state_dict() reshards a full state onto any number of ranks (save / load
/// below write and read dlopt checkpoints).
///
/// Every call checks its arguments on each rank and agrees across ranks (one small MPI_Allgather)
/// before any data moves: a bad argument on any rank throws dlopt::InvalidArgument on every rank.

#include <mpi.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "dlopt/core/span.hpp"
#include "dlopt/distributed/layout.hpp"
#include "dlopt/optim/optimizer.hpp"
#include "dlopt/resume.hpp"

namespace dlopt::distributed {

/// Bytes per fused bucket of the collectives.
constexpr std::size_t kDefaultBucketBytes = std::size_t(25) << 20;

namespace detail {

/// The tag of dlopt_mpi's point-to-point messages (kept apart from an application's by its value).
constexpr int kTag = 0x646C;

/// Throws std::runtime_error with MPI's message unless `rc` is MPI_SUCCESS.
void check(int rc, const char* what);

/// Throws InvalidArgument on every rank of `comm` if any rank's `error` is non-empty (its message,
/// prefixed with the rank) or if the ranks' `signature`s differ (`what` names the call).
void agree(MPI_Comm comm, const std::string& error, uint64_t signature, const std::string& what);

/// out[i] = (c[0][i] + c[1][i] + ... + c[N-1][i]) / N, added in rank order in compute_t<T> (float
/// for 16-bit values, rounded to nearest once): the same bits as dlopt.distributed's mean.
template <class T>
void ordered_mean(const std::vector<const T*>& c, int64_t n, T* out);

/// Rank r receives the mean over ranks of its part (counts[r] elements, parts consecutive in
/// `send`) into `out`; `scratch` is resized as needed. For float, double, bfloat16 and float16.
template <class T>
void reduce_scatter_mean(MPI_Comm comm, const T* send, const std::vector<int64_t>& counts, T* out,
                         std::vector<T>& scratch);

/// Every rank's part of `buf` (consecutive parts of counts[r] elements) to every rank.
template <class T>
void allgather_inplace(MPI_Comm comm, T* buf, const std::vector<int64_t>& counts);

/// Point-to-point messages posted now and completed together by wait(): contiguous arrays moved
/// in place (one copy between processes of a machine), matched in the order posted (kTag).
struct Messages {
  MPI_Comm comm;
  std::vector<MPI_Request> requests;
  void send(const void* data, int64_t bytes, int peer) { add(false, data, bytes, peer); }
  void receive(void* data, int64_t bytes, int peer) { add(true, data, bytes, peer); }
  void wait();

 private:
  void add(bool receive, const void* data, int64_t bytes, int peer);
};

/// Bytes from one rank to another (any size), and from `root` to every rank.
void send_blob(MPI_Comm comm, int dest, const std::vector<unsigned char>& blob);
std::vector<unsigned char> recv_blob(MPI_Comm comm, int source);
void bcast_blob(MPI_Comm comm, int root, std::vector<unsigned char>& blob);

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

/// Bytes appended in order: how a rank's state travels to another (checkpoints).
struct BlobWriter {
  std::vector<unsigned char> bytes;
  void put(const void* p, std::size_t n) {
    const auto* c = static_cast<const unsigned char*>(p);
    if (n) bytes.insert(bytes.end(), c, c + n);
  }
  template <class V>
  void value(const V& v) {
    static_assert(std::is_trivially_copyable_v<V>);
    put(&v, sizeof v);
  }
};

/// Reads what a BlobWriter wrote, in the same order.
struct BlobReader {
  const std::vector<unsigned char>& bytes;
  std::size_t pos = 0;
  void get(void* p, std::size_t n) {
    if (n > bytes.size() - pos) throw std::runtime_error("dlopt_mpi: truncated state message");
    if (n) std::memcpy(p, bytes.data() + pos, n);
    pos += n;
  }
  template <class V>
  V value() {
    V v;
    get(&v, sizeof v);
    return v;
  }
};

template <class Rule>
void put_tensor(BlobWriter& w, const TensorState<Rule>& t) {
  w.value(t.scalars);
  for (const StateBuffer& b : t.slots) {
    w.value(b.storage);
    w.value(uint64_t(b.bytes.size()));
    w.put(b.bytes.data(), b.bytes.size());
    w.value(uint64_t(b.scales.size()));
    w.put(b.scales.data(), b.scales.size() * sizeof(float));
  }
  w.value(uint64_t(t.master.size()));
  w.put(t.master.data(), t.master.size() * sizeof(float));
}

template <class Rule>
TensorState<Rule> get_tensor(BlobReader& r) {
  TensorState<Rule> t;
  t.scalars = r.value<TensorScalars>();
  for (StateBuffer& b : t.slots) {
    b.storage = r.value<Storage>();
    b.bytes.resize(r.value<uint64_t>());
    r.get(b.bytes.data(), b.bytes.size());
    b.scales.resize(r.value<uint64_t>());
    r.get(b.scales.data(), b.scales.size() * sizeof(float));
  }
  t.master.resize(r.value<uint64_t>());
  r.get(t.master.data(), t.master.size() * sizeof(float));
  return t;
}

/// Elements [s, e) of a tensor's state (a shard's part of it); cuts fall on kShardAlign boundaries,
/// so 8-bit scales (one per kQuantBlock elements) are cut exactly.
template <class Rule>
TensorState<Rule> slice_tensor(const TensorState<Rule>& t, int64_t s, int64_t e) {
  TensorState<Rule> out;
  out.scalars = t.scalars;
  for (std::size_t k = 0; k < num_slots<Rule>; ++k) {
    const StateBuffer& b = t.slots[k];
    StateBuffer& o = out.slots[k];
    o.storage = b.storage;
    if (b.empty()) continue;
    const auto item = int64_t(storage_bytes(b.storage));
    o.bytes.assign(b.bytes.begin() + s * item, b.bytes.begin() + e * item);
    if (!b.scales.empty()) o.scales.assign(b.scales.begin() + s / kQuantBlock, b.scales.begin() + scale_count(e));
  }
  if (!t.master.empty()) out.master.assign(t.master.begin() + s, t.master.begin() + e);
  return out;
}

/// `piece` appended to `whole` (the next elements of the same tensor): the inverse of slice_tensor.
template <class Rule>
void append_tensor(TensorState<Rule>& whole, const TensorState<Rule>& piece) {
  for (std::size_t k = 0; k < num_slots<Rule>; ++k) {
    whole.slots[k].bytes.insert(whole.slots[k].bytes.end(), piece.slots[k].bytes.begin(), piece.slots[k].bytes.end());
    whole.slots[k].scales.insert(whole.slots[k].scales.end(), piece.slots[k].scales.begin(), piece.slots[k].scales.end());
  }
  whole.master.insert(whole.master.end(), piece.master.begin(), piece.master.end());
}

}  // namespace detail

/// Replaces each tensor by its mean over the ranks of `comm`, in place, in fused buckets. Every rank
/// passes tensors of the same sizes in the same order (checked).
template <class T>
void allreduce_mean(MPI_Comm comm, const std::vector<Span<T>>& tensors, std::size_t bucket_bytes = kDefaultBucketBytes);

/// ZeRO-1: every rank keeps the full parameters (caller-owned, as for Optimizer) and steps only its
/// shard of them, holding only that shard's state. T is float, double, bfloat16 or float16 (as
/// Optimizer<Rule, T>; 16-bit gradients are averaged in float and rounded to nearest once).
template <class Rule, class T = float>
class ShardedOptimizer {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || is_16bit(storage_of<T>),
                "float, double, bfloat16 or float16 parameters");

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
      if (options.master_weights && !is_16bit(storage_of<T>))
        throw InvalidArgument("master_weights: only for 16-bit parameters");
      for (std::size_t i = 0; i < params_.size(); ++i) {
        if (params_[i].size < 0 || (params_[i].size > 0 && !params_[i].data))
          throw InvalidArgument("params[" + std::to_string(i) + "]: null or negative-size buffer");
        sig = detail::hash_value(detail::hash_value(sig, params_[i].size), params_[i].rows);
      }
      sig = hash_config(sig, config);
      sig = detail::hash_value(detail::hash_value(sig, options.state_dtype), options.stochastic_rounding);
    } catch (const std::exception& e) {
      error = e.what();
    }
    detail::agree(comm_, error, sig, "ShardedOptimizer: parameters and hyperparameters");

    split_ = splittable(options);
    std::vector<int64_t> sizes;
    for (const auto& p : params_) {
      sizes.push_back(p.size);
      space_.data.push_back(p.data);
      space_.offsets.push_back(space_.offsets.back() + p.size);
    }
    bounds_ = shard_bounds(sizes, std::vector<bool>(sizes.size(), split_), nranks_);
    const int64_t lo = bounds_[std::size_t(rank_)], hi = bounds_[std::size_t(rank_) + 1];
    shard_.resize(std::size_t(hi - lo));
    // Non-owned tensors stay in the local optimizer as empty placeholders (null gradient: never
    // stepped), so tensor indices are those of the unsharded optimizer (they key stochastic rounding).
    std::vector<ParamView<T>> local(params_.size(), ParamView<T>{nullptr, 0, 0});
    local_grads_.assign(params_.size(), nullptr);
    int64_t pos = 0;
    space_.for_pieces(lo, hi, [&](std::size_t i, int64_t s, int64_t e) {
      const bool whole = s == 0 && e == params_[i].size;
      // a whole tensor keeps its shape (matrix rules); a piece of one is a flat run of elements
      local[i] = whole ? params_[i] : ParamView<T>{params_[i].data + s, e - s, 0};
      local_grads_[i] = shard_.data() + pos;
      pieces_.push_back({i, s, e});
      pos += e - s;
    });
    if (rank_ == 0)  // zero-size tensors lie in no range: rank 0 steps them (their counters)
      for (std::size_t i = 0; i < params_.size(); ++i)
        if (params_[i].size == 0) local[i] = params_[i], local_grads_[i] = shard_.data(), pieces_.push_back({i, 0, 0});
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
    if (nranks_ == 1) return local_->step(grads);  // every tensor whole, the mean of one rank: no copy
    reduce_scatter(grads);
    local_->step(local_grads_);
    if (nranks_ > 1) allgather_params();
  }

  /// The full state, as Optimizer<Rule, T>::state_dict() of the unsharded optimizer returns it, on
  /// rank `root` (an empty `tensors` elsewhere): every rank sends its shard's state there, where the
  /// pieces of each tensor are joined. Collective.
  OptimizerState<Rule> state_dict(int root = 0) const {
    check_root(root);
    OptimizerState<Rule> local = local_->state_dict();
    detail::BlobWriter mine;
    for (const Piece& p : pieces_) detail::put_tensor(mine, local.tensors[p.i]);
    OptimizerState<Rule> full{local.config, local.options, {}};
    if (rank_ != root) {
      detail::send_blob(comm_, root, mine.bytes);
      return full;
    }
    full.tensors.resize(params_.size());
    std::vector<bool> started(params_.size(), false);
    for (int r = 0; r < nranks_; ++r) {
      const std::vector<unsigned char> blob = r == root ? std::move(mine.bytes) : detail::recv_blob(comm_, r);
      detail::BlobReader reader{blob};
      for (const Piece& p : pieces_of(r)) {  // in increasing order of the flat position: s ascends
        TensorState<Rule> t = detail::get_tensor<Rule>(reader);
        if (!started[p.i]) full.tensors[p.i] = std::move(t), started[p.i] = true;
        else detail::append_tensor(full.tensors[p.i], t);
      }
    }
    return full;
  }

  /// Loads a full state (from state_dict() on any number of ranks, an unsharded
  /// Optimizer<Rule, T>::state_dict(), or dlopt::load): each rank keeps its shard's part. With
  /// `root` >= 0 only that rank's `full` is read (broadcast; the others may pass an empty state),
  /// otherwise every rank passes the same full state. Checked in full on every rank first (as the
  /// unsharded load_state_dict checks it), and the ranks agree: on error, every rank throws
  /// InvalidArgument and nothing changed. Collective.
  void load_state_dict(const OptimizerState<Rule>& full, int root = -1) {
    if (root >= 0) {
      check_root(root);
      detail::BlobWriter w;
      if (rank_ == root) {
        w.value(full.config);
        w.value(full.options);
        w.value(uint64_t(full.tensors.size()));
        for (const TensorState<Rule>& t : full.tensors) detail::put_tensor(w, t);
      }
      detail::bcast_blob(comm_, root, w.bytes);
      if (rank_ != root) {
        detail::BlobReader r{w.bytes};
        OptimizerState<Rule> got{r.value<Config>(), r.value<StorageOptions>(), {}};
        got.tensors.resize(r.value<uint64_t>());
        for (TensorState<Rule>& t : got.tensors) t = detail::get_tensor<Rule>(r);
        return load_state_dict(got);
      }
    }
    std::string error;
    OptimizerState<Rule> mine{full.config, full.options, std::vector<TensorState<Rule>>(params_.size())};
    try {
      std::vector<TensorShape> shapes;
      for (const ParamView<T>& p : params_) shapes.push_back(p.shape());
      dlopt::detail::check_state(full, shapes, storage_of<T>);
      if (splittable(full.options) != split_)
        throw InvalidArgument("state: its storage options (state_dtype, stochastic_rounding) change where the "
                              "shards are cut; construct the ShardedOptimizer with the checkpoint's options");
      for (const Piece& p : pieces_) {
        const TensorState<Rule>& t = full.tensors[p.i];
        mine.tensors[p.i] = p.s == 0 && p.e == params_[p.i].size ? t : detail::slice_tensor(t, p.s, p.e);
      }
      local_->check_state(mine);
    } catch (const std::exception& e) {
      error = e.what();
    }
    detail::agree(comm_, error, 0, "ShardedOptimizer::load_state_dict");
    local_->load_state_dict(std::move(mine));
  }

  Optimizer<Rule, T>& local() { return *local_; }  ///< this rank's optimizer (its shard's state)
  Config& config() { return local_->config(); }  ///< the live hyperparameters (set the lr between steps)
  const std::vector<ParamView<T>>& params() const { return params_; }  ///< the full parameters
  const std::vector<int64_t>& bounds() const { return bounds_; }  ///< rank r owns [bounds[r], bounds[r+1])
  int rank() const { return rank_; }     ///< this rank in `comm`
  int size() const { return nranks_; }   ///< ranks in `comm`
  MPI_Comm comm() const { return comm_; }  ///< the communicator

 private:
  struct Piece {
    std::size_t i;
    int64_t s, e;
  };

  static uint64_t hash_config(uint64_t h, Config c) {
    c.visit([&](const char*, auto& v) { h = detail::hash_value(h, double(v)); });
    return h;
  }

  /// Whether tensors may be cut inside: an elementwise rule that draws no random bits keyed by the
  /// element's index (stochastic rounding of 16-bit parameters or of non-native state), as Python's.
  static bool splittable(const StorageOptions& o) {
    const bool native_state = o.state_dtype == StateDType::Default ||
                              (o.state_dtype == StateDType::Float32 && std::is_same_v<T, float>);
    const bool native = !is_16bit(storage_of<T>) && native_state;
    return splits_elementwise<Rule> && (!o.stochastic_rounding || native);
  }

  void check_root(int root) const {
    if (root < 0 || root >= nranks_) throw InvalidArgument("root: not a rank of the communicator");
  }

  /// Rank r's pieces (tensor, start, stop), in the order r's state_dict sends them.
  std::vector<Piece> pieces_of(int r) const {
    std::vector<Piece> out;
    space_.for_pieces(bounds_[std::size_t(r)], bounds_[std::size_t(r) + 1],
                      [&](std::size_t i, int64_t s, int64_t e) { out.push_back({i, s, e}); });
    if (r == 0)
      for (std::size_t i = 0; i < params_.size(); ++i)
        if (params_[i].size == 0) out.push_back({i, 0, 0});
    return out;
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

  /// shard_ = the rank-order mean of the ranks' gradients over this rank's range, bucket by bucket.
  /// Gradients are sent from the caller's arrays in place (one message per piece of a tensor) and
  /// this rank's own contribution is read in place: no packing copy.
  void reduce_scatter(const std::vector<const T*>& grads) {
    const int64_t lo = bounds_[std::size_t(rank_)];
    for_chunks([&](const std::vector<std::pair<int64_t, int64_t>>& ranges, int64_t k) {
      auto [a, b] = ranges[std::size_t(rank_)];
      const int64_t mine = b - a;
      if (scratch_.size() < std::size_t(mine * (nranks_ - 1))) scratch_.resize(std::size_t(mine * (nranks_ - 1)));
      detail::Messages m{comm_, {}};
      for (int q = 0, j = 0; q < nranks_; ++q) {
        if (q == rank_) continue;
        T* slot = scratch_.data() + int64_t(j++) * mine;
        space_.for_pieces(a, b, [&](std::size_t i, int64_t s, int64_t e) {
          m.receive(slot + (space_.offsets[i] + s - a), (e - s) * int64_t(sizeof(T)), q);
        });
        space_.for_pieces(ranges[std::size_t(q)].first, ranges[std::size_t(q)].second, [&](std::size_t i, int64_t s, int64_t e) {
          m.send(grads[i] + s, (e - s) * int64_t(sizeof(T)), q);
        });
      }
      m.wait();
      std::vector<const T*> c(static_cast<std::size_t>(nranks_));
      space_.for_pieces(a, b, [&](std::size_t i, int64_t s, int64_t e) {
        const int64_t at = space_.offsets[i] + s - a;  // the piece's position in the chunk
        for (int q = 0, j = 0; q < nranks_; ++q)
          c[std::size_t(q)] = q == rank_ ? grads[i] + s : scratch_.data() + int64_t(j++) * mine + at;
        detail::ordered_mean(c, e - s, shard_.data() + (a - lo) + at);
      });
      (void)k;
    });
  }

  /// Every rank's updated range of the parameters to every rank: sent from and received into the
  /// parameters in place, every message posted at once.
  void allgather_params() {
    detail::Messages m{comm_, {}};
    for (int q = 0; q < nranks_; ++q) {
      if (q == rank_) continue;
      space_.for_pieces(bounds_[std::size_t(q)], bounds_[std::size_t(q) + 1], [&](std::size_t i, int64_t s, int64_t e) {
        m.receive(space_.data[i] + s, (e - s) * int64_t(sizeof(T)), q);
      });
      space_.for_pieces(bounds_[std::size_t(rank_)], bounds_[std::size_t(rank_) + 1], [&](std::size_t i, int64_t s, int64_t e) {
        m.send(space_.data[i] + s, (e - s) * int64_t(sizeof(T)), q);
      });
    }
    m.wait();
  }

  MPI_Comm comm_;
  int rank_ = 0, nranks_ = 1;
  std::vector<ParamView<T>> params_;
  std::size_t bucket_bytes_;
  bool split_ = true;
  detail::FlatSpace<T> space_;
  std::vector<int64_t> bounds_;
  std::vector<Piece> pieces_;
  std::vector<T> shard_, scratch_;
  std::vector<const T*> local_grads_;
  std::unique_ptr<Optimizer<Rule, T>> local_;
};

/// dlopt::save for a sharded optimizer: the state is gathered on `root`, which writes `path` as
/// dlopt::save writes the unsharded optimizer (Python's dlopt.load reads it, and any number of ranks
/// resumes it). Collective: an error on the root throws InvalidArgument on every rank.
template <class Rule, class T>
void save(const std::string& path, const ShardedOptimizer<Rule, T>& opt, const SaveOptions& options, int root = 0) {
  OptimizerState<Rule> full = opt.state_dict(root);
  std::string error;
  if (opt.rank() == root) {
    try {
      Optimizer<Rule, T> whole(opt.params(), full.config, full.options);  // a view: allocates no state
      whole.load_state_dict(std::move(full));
      dlopt::save(path, whole, options);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  detail::agree(opt.comm(), error, 0, "dlopt::distributed::save");
}

/// dlopt::load for a sharded optimizer, on any number of ranks: every rank reads `path` (the
/// parameters are restored on every rank, checked as dlopt::load checks them) and keeps its
/// shard's part of the state. Collective: an error on any rank throws InvalidArgument on every rank.
template <class Rule, class T>
std::optional<SchedulerState> load(const std::string& path, ShardedOptimizer<Rule, T>& opt,
                                   const std::vector<std::string>& names) {
  Optimizer<Rule, T> whole(opt.params(), opt.config(), opt.local().options());
  std::optional<SchedulerState> schedule;
  std::string error;
  try {
    schedule = dlopt::load(path, whole, names);
  } catch (const std::exception& e) {
    error = e.what();
  }
  detail::agree(opt.comm(), error, 0, "dlopt::distributed::load");
  opt.load_state_dict(whole.state_dict());
  return schedule;
}

}  // namespace dlopt::distributed
