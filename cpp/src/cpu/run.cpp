// The CPU kernel: a loop over Rule::update, vectorised with `omp simd` and split across threads in
// fixed-size blocks. Block boundaries depend only on tensor sizes, never on the thread count, so
// every element takes the same instruction path and results are bitwise reproducible.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "blocks.hpp"
#include "convert.hpp"
#include "dlopt/core/lane_sum.hpp"
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

// Buffers that are not stored in the compute type go through L1-sized chunks of it (256: one 8-bit
// quant block; measured faster than 64, 512 and 1024 for Adam with bf16 and int8 state).
constexpr int64_t kStage = 256;
static_assert(kBlock % kStage == 0 && kStage % kQuantBlock == 0, "chunks hold whole quant blocks");

template <class Rule, class C>
DLOPT_KERNEL void run_native(const Segment<Rule, C>& seg, int64_t begin, int64_t len) {
  const auto c = seg.coeffs;
  C* __restrict p = static_cast<C*>(seg.param.data) + begin;
  const C* __restrict g = static_cast<const C*>(seg.grad.data) + begin;
  C* s[num_slots<Rule> + 1] = {};
  for (std::size_t k = 0; k < num_slots<Rule>; ++k)
    s[k] = seg.slots[k] ? static_cast<C*>(seg.slots[k].data) + begin : nullptr;
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) Rule::update(c, i, p, g, s);
}

/// The buffer's elements from `begin` in place when stored in C, else null (it needs staging).
template <class C>
C* in_place(const Buffer& b, int64_t begin) {
  return b.storage == storage_of<C> ? static_cast<C*>(b.data) + begin : nullptr;
}

/// Stores the updated 16-bit parameter (C = float): stochastically rounded from the low 16 of each
/// element's `random` bits, or to nearest even when `random` is null.
template <class C>
[[gnu::always_inline]] inline void store_param(const Buffer& param, int64_t begin, int64_t n, const C* __restrict in,
                 const uint32_t* __restrict random) {
  uint16_t* __restrict x = static_cast<uint16_t*>(param.data) + begin;
  const bool bf16 = param.storage == Storage::BFloat16;
  if (random && bf16) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) x[i] = formats::float_to_bf16_sr(float(in[i]), formats::param_dither(random[i]));
  } else if (random) {
    for (int64_t i = 0; i < n; ++i) x[i] = formats::float_to_f16_sr(float(in[i]), formats::param_dither(random[i]));
  } else if (bf16) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) x[i] = formats::float_to_bf16(float(in[i]));
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) x[i] = formats::float_to_f16(float(in[i]));
  }
}

/// L1 scratch for one chunk of a staged block, and the compute-type view of the chunk's buffers
/// (each in place when stored in C, else loaded into the scratch).
template <class Rule, class C>
struct Staged {
  static constexpr std::size_t S = num_slots<Rule>;
  alignas(64) C pbuf[kStage], gbuf[kStage], sbuf[S + 1][kStage];
  C* p = nullptr;
  const C* g = nullptr;
  C* s[S + 1] = {};
  bool staged_param = false;

  // always_inline: compiled into each DLOPT_KERNEL clone (a separate function would run at the
  // portable build's baseline ISA).
  [[gnu::always_inline]] void load_chunk(const Segment<Rule, C>& seg, int64_t off, int64_t n) {
    p = nullptr;
    if constexpr (std::is_same_v<C, float>) p = seg.master ? seg.master + off : nullptr;
    if (!p) p = in_place<C>(seg.param, off);
    staged_param = !p;
    if (staged_param) load(seg.param, off, n, p = pbuf);
    g = in_place<C>(seg.grad, off);
    if (!g) load(seg.grad, off, n, gbuf), g = gbuf;
    for (std::size_t k = 0; k < S; ++k) {
      s[k] = nullptr;
      if (!seg.slots[k]) continue;
      s[k] = in_place<C>(seg.slots[k], off);
      if (!s[k]) load(seg.slots[k], off, n, s[k] = sbuf[k]);
    }
  }
};

/// One chunk of a staged block (n elements from `off`): each buffer not stored in C is loaded into
/// C scratch, the rule runs on C arrays exactly as in run_native, and the results are stored back
/// (rounded with one hash per element and step when stochastic rounding is on). `n` is a
/// compile-time constant for whole chunks: the loops then have fixed trip counts, and GCC keeps
/// each chunk's conversions and maths close enough that they overlap in the core.
template <class Rule, class C, class N>
[[gnu::always_inline]] inline void run_chunk(const Segment<Rule, C>& seg, Staged<Rule, C>& st,
                                             uint32_t* __restrict rbuf, int64_t off, N n) {
  constexpr std::size_t S = num_slots<Rule>;
  const auto c = seg.coeffs;
  st.load_chunk(seg, off, n);
  {
    C* __restrict pp = st.p;
    const C* __restrict gg = st.g;
    C* const* s = st.s;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) Rule::update(c, i, pp, gg, s);
  }
  const uint32_t* random = nullptr;
  if (seg.stochastic) {
    const formats::BitsKey key = formats::bits_key(seg.rounding_key, off);
    const uint32_t first = uint32_t(off);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) rbuf[i] = formats::random_bits(key, first + uint32_t(i));
    random = rbuf;
  }
  for (std::size_t k = 0; k < S; ++k)
    if (st.s[k] == st.sbuf[k]) store(seg.slots[k], off, n, st.s[k], random, int(k));
  if constexpr (std::is_same_v<C, float>) {
    if (seg.master) store_param(seg.param, off, n, st.p, nullptr);  // to nearest from the master
    else if (st.staged_param) store_param(seg.param, off, n, st.p, random);
  }
}

/// A block with buffers in other formats than C, chunk by chunk (run_chunk).
template <class Rule, class C>
DLOPT_KERNEL void run_staged(const Segment<Rule, C>& seg, int64_t begin, int64_t len) {
  Staged<Rule, C> st;
  alignas(64) uint32_t rbuf[kStage];
  const int64_t whole = begin + len / kStage * kStage;
  for (int64_t off = begin; off < whole; off += kStage)
    run_chunk(seg, st, rbuf, off, std::integral_constant<int64_t, kStage>{});
  if (whole < begin + len) run_chunk(seg, st, rbuf, whole, begin + len - whole);
}

template <class Rule, class C>
void run_block(const Segment<Rule, C>& seg, int64_t begin, int64_t len) {
  if (seg.native) run_native(seg, begin, len);
  else run_staged(seg, begin, len);
}

/// The 4K blocks of every segment (blocks.hpp): f(b, k, begin, len) for each. Returns the
/// numbering (first_block[k]: segment k's first block), thread-local scratch reused every step.
template <class Seg, class F>
const std::vector<int64_t>& for_each_block(const Seg* segments, std::size_t count, const F& f) {
  thread_local std::vector<int64_t> first_block;
  detail::for_each_block<kBlock, kParallelMin>(
      count, [segments](std::size_t k) { return segments[k].size; }, first_block, f);
  return first_block;
}

}  // namespace

template <class Rule, class T>
void run(const Segment<Rule, T>* segments, std::size_t count) {
  if constexpr (Rule::matrix) {
    // One tensor after another; each product inside is a multi-threaded Eigen GEMM.
    for (std::size_t k = 0; k < count; ++k) {
      const Segment<Rule, T>& seg = segments[k];
      if (seg.size == 0) continue;
      T* s[num_slots<Rule> + 1] = {};
      for (std::size_t j = 0; j < num_slots<Rule>; ++j) s[j] = static_cast<T*>(seg.slots[j].data);
      Rule::update_matrix(seg.coeffs, TensorShape{seg.size, seg.rows, seg.batch}, static_cast<T*>(seg.param.data),
                          static_cast<const T*>(seg.grad.data), s);
    }
  } else {
    for_each_block(segments, count, [segments](int64_t, std::size_t k, int64_t begin, int64_t len) {
      run_block(segments[k], begin, len);
    });
  }
}

namespace {

/// Rule::reduce's terms of n elements (into the scratch terms[r][i]) added to acc[r]. No `omp simd`
/// here: GCC 12 gives the array that reduce returns a per-lane copy under it and then fails to
/// vectorize; its auto-vectorizer handles the plain loop (checked with -fopt-info-vec). The sums
/// are here too, not in the caller: there they would run at the portable build's baseline (SSE2,
/// 8 additions per 16 terms where AVX-512 needs 2; LAMB's step at 1e5 was 1.11x native's).
template <class Rule, class C>
DLOPT_KERNEL void reduce_terms(const typename Rule::template Coeffs<C>& coeffs, const C* __restrict p, const C* __restrict g,
                  C* const* slots, int64_t n, double (*__restrict terms)[kStage],
                  dlopt::detail::LaneSum* __restrict acc) {
  const auto c = coeffs;
  C* s[num_slots<Rule> + 1] = {};  // a local copy: the loop then keeps the pointers in registers
  for (std::size_t k = 0; k < num_slots<Rule>; ++k) s[k] = slots[k];
  for (int64_t i = 0; i < n; ++i) {
    const auto t = Rule::reduce(c, i, p, g, s);
    for (int r = 0; r < Rule::reductions; ++r) terms[r][i] = t[r];
  }
  for (int r = 0; r < Rule::reductions; ++r) acc[r].add(n, [&](int64_t i) { return terms[r][i]; });
}

/// The sums of Rule::reduce's terms over one block, chunk by chunk, in detail::LaneSum's order
/// over the whole block.
template <class Rule, class C>
void reduce_block(const Segment<Rule, C>& seg, int64_t begin, int64_t len, double* out) {
  constexpr int R = Rule::reductions;
  static_assert(kStage % dlopt::detail::LaneSum::kLanes == 0, "a chunk fills whole lane groups (but at a tensor's end)");
  dlopt::detail::LaneSum acc[R];
  alignas(64) double terms[R][kStage];
  auto add = [&](const C* p, const C* g, C* const* s, int64_t n) {
    reduce_terms<Rule, C>(seg.coeffs, p, g, s, n, terms, acc);
  };
  if (seg.native) {
    for (int64_t off = begin; off < begin + len; off += kStage) {
      C* s[num_slots<Rule> + 1] = {};
      for (std::size_t k = 0; k < num_slots<Rule>; ++k)
        s[k] = seg.slots[k] ? static_cast<C*>(seg.slots[k].data) + off : nullptr;
      add(static_cast<const C*>(seg.param.data) + off, static_cast<const C*>(seg.grad.data) + off, s,
          std::min(kStage, begin + len - off));
    }
  } else {
    Staged<Rule, C> st;
    for (int64_t off = begin; off < begin + len; off += kStage) {
      const int64_t n = std::min(kStage, begin + len - off);
      st.load_chunk(seg, off, n);
      add(st.p, st.g, st.s, n);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = acc[r].total();
}

}  // namespace

template <class Rule, class T>
void reduce(Segment<Rule, T>* segments, std::size_t count) {
  if constexpr (Rule::reductions > 0) {
    constexpr int R = Rule::reductions;
    int64_t blocks = 0;
    for (std::size_t k = 0; k < count; ++k) blocks += dlopt::blocks::count_of<kBlock>(segments[k].size);
    thread_local std::vector<double> partial;  // per block, reused: no allocation per step once warm
    partial.resize(std::size_t(blocks) * R);
    double* out = partial.data();  // (the workers see their own thread_local, not this one)
    const std::vector<int64_t>& first_block =
        for_each_block(segments, count, [segments, out](int64_t b, std::size_t k, int64_t begin, int64_t len) {
          reduce_block(segments[k], begin, len, out + std::size_t(b) * R);
        });
    const int64_t* fb = first_block.data();
    for (std::size_t k = 0; k < count; ++k) {
      double sums[R] = {};
      for (int64_t b = fb[k]; b < fb[k + 1]; ++b)
        for (int r = 0; r < R; ++r) sums[r] += partial[std::size_t(b) * R + r];
      Rule::finish(segments[k].coeffs, sums, segments[k].rows);
    }
  } else {
    (void)segments, (void)count;
  }
}

#define DLOPT_INSTANTIATE_RUN(Rule)                                           \
  template void run<Rule, float>(const Segment<Rule, float>*, std::size_t);  \
  template void run<Rule, double>(const Segment<Rule, double>*, std::size_t); \
  template void reduce<Rule, float>(Segment<Rule, float>*, std::size_t);     \
  template void reduce<Rule, double>(Segment<Rule, double>*, std::size_t);
DLOPT_FOR_EACH_RULE(DLOPT_INSTANTIATE_RUN)
#undef DLOPT_INSTANTIATE_RUN

}  // namespace dlopt::cpu
