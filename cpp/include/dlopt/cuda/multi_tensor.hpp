#pragma once
/// @file cuda/multi_tensor.hpp
/// The body of the CUDA multi-tensor step kernel, as a DLOPT_HD function: the kernel (cuda/step.cu)
/// calls it for its block and thread, and the C++ tests run it on the host for every (chunk, thread)
/// of a launch to check the indexing (tensor search, packs, tails, unaligned buffers) without a GPU.
/// Internal to dlopt.
///
/// Layout: every tensor is cut into chunks of kChunk elements, numbered across tensors
/// (first_chunk[k] = index of tensor k's first chunk; first_chunk[count] = total). One block per
/// chunk. A native chunk (every buffer stored in the compute type): its threads walk it in 16-byte
/// packs when all of the tensor's buffers are 16-byte aligned, else element by element. Any other
/// chunk is staged as the CPU's run_staged does, kStage elements at a time: each thread loads its
/// kPerThread consecutive elements from their storage into registers in the compute type, runs
/// Rule::update, and stores 16-bit and float buffers back at once; 8-bit slots go through shared
/// memory, because their codes need the absolute maximum of each 256-element quant block (a chunk
/// holds whole quant blocks, so the block's threads find it themselves after a barrier: no atomics).
/// Rounding (to nearest, stochastic from formats::random_bits of the element index) is the CPU's.
///
/// The barriers are the `all_threads` argument of process_chunk: on the GPU it runs its function
/// in this thread and then __syncthreads(); the host emulation calls it for every thread in turn.

#include <cstdint>

#include "dlopt/core/blocks.hpp"
#include "dlopt/core/formats.hpp"
#include "dlopt/core/lane_sum.hpp"
#include "dlopt/core/step.hpp"

#if defined(__CUDA_ARCH__)
#define DLOPT_UNROLL _Pragma("unroll")
#else
#define DLOPT_UNROLL
#endif

namespace dlopt::cuda::detail {

using dlopt::Buffer;  // the typed view (core/storage.hpp), not cuda::Buffer, the device allocation

constexpr int kThreads = 256;      ///< threads per block
constexpr int64_t kChunk = 4096;   ///< elements per block: a multiple of every pack width

/// 16 bytes of T: the unit of the aligned loads and stores (float4 / double2).
template <class T>
struct alignas(16) Pack {
  T v[16 / sizeof(T)];
};

/// Writes first_chunk[0..count] (blocks::number) and returns the number of chunks of the launch.
template <class Seg>
int64_t chunk_prefix(const Seg* segments, std::size_t count, int64_t* first_chunk) {
  return blocks::number<kChunk>(count, [segments](std::size_t k) { return segments[k].size; }, first_chunk);
}

/// Thread `thread` of `threads` processes its elements of [begin, end) of a native segment.
template <class Rule, class T>
DLOPT_HD void native_elements(const cpu::Segment<Rule, T>& seg, int64_t begin, int64_t end, int thread,
                              int threads) {
  constexpr int V = int(16 / sizeof(T));
  constexpr int S = int(num_slots<Rule>);
  // Native segments: every buffer holds T.
  T* const param = static_cast<T*>(seg.param.data);
  const T* const grad = static_cast<const T*>(seg.grad.data);
  T* slots[S + 1] = {};
  uintptr_t bits = reinterpret_cast<uintptr_t>(param) | reinterpret_cast<uintptr_t>(grad);
  for (int k = 0; k < S; ++k) {
    slots[k] = static_cast<T*>(seg.slots[k].data);
    bits |= reinterpret_cast<uintptr_t>(slots[k]);
  }

  // begin is a multiple of kChunk, hence of V: with aligned base pointers every pack is aligned.
  int64_t vec_end = begin;
  if (bits % 16 == 0) {
    vec_end = begin + (end - begin) / V * V;
    for (int64_t i = begin + int64_t(thread) * V; i < vec_end; i += int64_t(threads) * V) {
      Pack<T> p = *reinterpret_cast<const Pack<T>*>(param + i);
      const Pack<T> g = *reinterpret_cast<const Pack<T>*>(grad + i);
      Pack<T> s[S + 1] = {};
      T* sp[S + 1] = {};
      DLOPT_UNROLL
      for (int k = 0; k < S; ++k) {
        if (slots[k]) s[k] = *reinterpret_cast<const Pack<T>*>(slots[k] + i);
        sp[k] = s[k].v;
      }
      DLOPT_UNROLL
      for (int j = 0; j < V; ++j) Rule::update(seg.coeffs, j, p.v, g.v, sp);
      *reinterpret_cast<Pack<T>*>(param + i) = p;
      DLOPT_UNROLL
      for (int k = 0; k < S; ++k)
        if (slots[k]) *reinterpret_cast<Pack<T>*>(slots[k] + i) = s[k];
    }
  }
  // Unaligned tensors, and the last < V elements of an aligned one.
  for (int64_t i = vec_end + thread; i < end; i += threads)
    Rule::update(seg.coeffs, i, param, grad, slots);
}

// ---- staged chunks: buffers in other formats than the compute type ---------------------------------

constexpr int kPerThread = 4;                       ///< consecutive elements per thread in a stage
constexpr int64_t kStage = int64_t(kThreads) * kPerThread;  ///< elements per stage
constexpr int kQuantThreads = int(kQuantBlock / kPerThread);  ///< threads per 256-element quant block
static_assert(kChunk % kStage == 0 && kStage % kQuantBlock == 0 && kQuantBlock % kPerThread == 0,
              "a stage holds whole quant blocks, a thread's elements lie in one");

/// Element i of `b` in the compute type C (8-bit codes: `b` must be Int8 / UInt8 with scales).
template <class C>
DLOPT_HD C load_element(const Buffer& b, int64_t i) {
  switch (b.storage) {
    case Storage::Float64: return C(static_cast<const double*>(b.data)[i]);
    case Storage::Float32: return C(static_cast<const float*>(b.data)[i]);
    case Storage::BFloat16: return C(formats::bf16_to_float(static_cast<const uint16_t*>(b.data)[i]));
    case Storage::Float16: return C(formats::f16_to_float(static_cast<const uint16_t*>(b.data)[i]));
    case Storage::Int8:
      return C(formats::decode_signed(static_cast<const int8_t*>(b.data)[i], b.scale[i / kQuantBlock]));
    case Storage::UInt8:
      return C(formats::decode_unsigned(static_cast<const uint8_t*>(b.data)[i], b.scale[i / kQuantBlock]));
  }
  return C(0);
}

/// Stores x into element i of float, bfloat16 or float16 buffer `b` as cpu::store / store_param do:
/// floats converted; 16 bits to nearest, or stochastically from `random` (the element's bits) when
/// `stochastic`: a parameter (slot < 0) from their low 16 bits, bfloat16 state slot k from its byte.
template <class C>
DLOPT_HD void store_element(const Buffer& b, int64_t i, C x, bool stochastic, uint32_t random, int slot) {
  switch (b.storage) {
    case Storage::Float64: static_cast<double*>(b.data)[i] = double(x); break;
    case Storage::Float32: static_cast<float*>(b.data)[i] = float(x); break;
    case Storage::BFloat16: {
      const uint32_t dither = slot < 0 ? formats::param_dither(random) : formats::bf16_state_dither(random, slot);
      static_cast<uint16_t*>(b.data)[i] =
          stochastic ? formats::float_to_bf16_sr(float(x), dither) : formats::float_to_bf16(float(x));
      break;
    }
    case Storage::Float16:  // parameters only (no slot is stored in float16)
      static_cast<uint16_t*>(b.data)[i] =
          stochastic ? formats::float_to_f16_sr(float(x), formats::param_dither(random)) : formats::float_to_f16(float(x));
      break;
    default: break;  // 8-bit codes: encode_stage
  }
}

DLOPT_HD bool is_8bit(const Buffer& b) { return b.storage == Storage::Int8 || b.storage == Storage::UInt8; }

/// Shared memory of a staged chunk: the new values of the 8-bit slots of one stage (as float, what
/// the codes are made from) and each thread's largest |value| of them, as float bits.
template <class Rule>
struct StageShared {
  float value[num_slots<Rule> + 1][kStage];
  uint32_t absmax[num_slots<Rule> + 1][kThreads];
};

/// One thread's elements of a stage at `off` (a multiple of kStage from the tensor's start), loaded
/// from their storage into registers in the compute type C (the parameter from the master copy
/// when there is one). The update and the reduction stages both start here.
template <class Rule, class C>
struct ThreadElements {
  static constexpr int S = int(num_slots<Rule>);
  int64_t first;  ///< the index of the thread's first element in its tensor
  int n;          ///< how many of the kPerThread it has (fewer at the tensor's end)
  C p[kPerThread] = {}, g[kPerThread] = {}, s[S + 1][kPerThread] = {};
  C* sp[S + 1] = {};  ///< the slots the rule sees: s[k], or null for a slot the tensor does not use
  float* master = nullptr;  ///< the float32 master copy of a 16-bit parameter, else null

  DLOPT_HD ThreadElements(const cpu::Segment<Rule, C>& seg, int64_t off, int64_t end, int thread)
      : first(off + int64_t(thread) * kPerThread),
        n(first >= end ? 0 : (end - first < kPerThread ? int(end - first) : kPerThread)) {
    if constexpr (sizeof(C) == sizeof(float)) master = seg.master;
    for (int k = 0; k < S; ++k) sp[k] = seg.slots[k].data ? s[k] : nullptr;
    for (int e = 0; e < n; ++e) {
      p[e] = master ? C(master[first + e]) : load_element<C>(seg.param, first + e);
      g[e] = load_element<C>(seg.grad, first + e);
      for (int k = 0; k < S; ++k)
        if (sp[k]) s[k][e] = load_element<C>(seg.slots[k], first + e);
    }
  }
};

/// Phase 1 of a stage at `off` (a multiple of kStage from the tensor's start): thread `thread` loads
/// its elements, runs the rule, stores every buffer but the 8-bit slots, and leaves those in `sh`.
template <class Rule, class C>
DLOPT_HD void update_stage(const cpu::Segment<Rule, C>& seg, int64_t off, int64_t end, StageShared<Rule>& sh,
                           int thread) {
  constexpr int S = int(num_slots<Rule>);
  ThreadElements<Rule, C> t(seg, off, end, thread);
  const int64_t first = t.first;
  const int n = t.n;
  C* const p = t.p;
  C(&s)[S + 1][kPerThread] = t.s;
  C* const* sp = t.sp;
  float* const master = t.master;
  for (int e = 0; e < n; ++e) Rule::update(seg.coeffs, e, p, t.g, sp);
  for (int e = 0; e < n; ++e) {
    const uint32_t random = seg.stochastic ? formats::random_bits(seg.rounding_key, first + e) : 0U;
    if (master) {  // the master keeps the value; the parameter is its nearest 16-bit neighbour
      master[first + e] = float(p[e]);
      store_element<C>(seg.param, first + e, p[e], false, 0U, -1);
    } else {
      store_element<C>(seg.param, first + e, p[e], seg.stochastic, random, -1);
    }
    for (int k = 0; k < S; ++k)
      if (sp[k] && !is_8bit(seg.slots[k])) store_element<C>(seg.slots[k], first + e, s[k][e], seg.stochastic, random, k);
  }
  for (int k = 0; k < S; ++k) {
    if (!sp[k] || !is_8bit(seg.slots[k])) continue;
    uint32_t m = 0;  // non-negative floats order as their bits; inf / NaN exceed every finite one
    for (int e = 0; e < n; ++e) {
      const float v = float(s[k][e]);
      sh.value[k][thread * kPerThread + e] = v;
      const uint32_t a = formats::bits_of(v) & 0x7fffffffU;
      m = a > m ? a : m;
    }
    sh.absmax[k][thread] = m;
  }
}

/// Phase 2 (after a barrier): the 8-bit slots' codes and scales of the stage, as cpu::store makes
/// them: the quant block's scale is the largest |value| of its threads (NaN if one is not finite).
template <class Rule, class C>
DLOPT_HD void encode_stage(const cpu::Segment<Rule, C>& seg, int64_t off, int64_t end, const StageShared<Rule>& sh,
                           int thread) {
  constexpr int S = int(num_slots<Rule>);
  const int64_t first = off + int64_t(thread) * kPerThread;
  const int n = first >= end ? 0 : (end - first < kPerThread ? int(end - first) : kPerThread);
  const int lead = thread / kQuantThreads * kQuantThreads;  // the quant block's first thread
  for (int k = 0; k < S; ++k) {
    const Buffer& b = seg.slots[k];
    if (!b.data || !is_8bit(b)) continue;
    uint32_t m = 0;
    for (int t = lead; t < lead + kQuantThreads; ++t) m = sh.absmax[k][t] > m ? sh.absmax[k][t] : m;
    const float scale = m < 0x7f800000U ? formats::float_of(m) : formats::float_of(0x7fc00000U);  // quiet NaN
    const float inv = formats::block_inverse(scale);
    if (thread == lead && first < end) b.scale[first / kQuantBlock] = scale;
    for (int e = 0; e < n; ++e) {
      const float v = sh.value[k][thread * kPerThread + e];
      const uint32_t dither =
          seg.stochastic ? formats::dither_of_byte(formats::slot_byte(formats::random_bits(seg.rounding_key, first + e), k))
                         : formats::kHalfDither;
      if (b.storage == Storage::Int8)
        static_cast<int8_t*>(b.data)[first + e] = int8_t(formats::encode_signed(v, inv, dither));
      else
        static_cast<uint8_t*>(b.data)[first + e] = uint8_t(formats::encode_unsigned(v, inv, dither));
    }
  }
}

/// The block of chunk `chunk` (0 <= chunk < total) processes it. `all_threads(f)` calls f(thread)
/// for every thread of the block, then waits for all of them (a barrier); `sh` is the block's
/// shared memory.
template <class Rule, class T, class AllThreads>
DLOPT_HD void process_chunk(const int64_t* first_chunk, const cpu::Segment<Rule, T>* segments, int64_t count,
                            int64_t chunk, StageShared<Rule>& sh, const AllThreads& all_threads) {
  // The tensor of this chunk (it holds the chunk and is not empty).
  const std::size_t lo = blocks::tensor_of(first_chunk, std::size_t(count), chunk);
  const cpu::Segment<Rule, T> seg = segments[lo];
  const int64_t begin = (chunk - first_chunk[lo]) * kChunk;
  const int64_t end = begin + kChunk < seg.size ? begin + kChunk : seg.size;
  if (seg.native) {
    all_threads([&](int thread) { native_elements<Rule, T>(seg, begin, end, thread, kThreads); });
    return;
  }
  bool quantized = false;
  for (int k = 0; k < int(num_slots<Rule>); ++k) quantized = quantized || (seg.slots[k].data && is_8bit(seg.slots[k]));
  for (int64_t off = begin; off < end; off += kStage) {
    all_threads([&](int thread) { update_stage<Rule, T>(seg, off, end, sh, thread); });
    if (quantized) all_threads([&](int thread) { encode_stage<Rule, T>(seg, off, end, sh, thread); });
  }
}

// ---- the reduction phase (Rule::reductions > 0): cpu::reduce's sums, bit for bit --------------------
//
// A chunk is one of cpu::reduce's 4096-element blocks (the same numbering), so chunk c's sums are
// block c's: per stage, every thread writes Rule::reduce's terms of its elements into shared memory
// (loaded from any storage, as the update does); then thread r·16 + l adds the terms of lane l of
// sum r in element order (LaneSum::add_lane), and thread 0 combines the lanes (LaneSum::combine) into
// partial[chunk · R + r]. finish_tensor then adds a tensor's chunks in order and calls Rule::finish.

/// Shared memory of a reduction chunk: one stage's terms and the running lanes of each sum.
template <class Rule>
struct ReduceShared {
  static constexpr int R = Rule::reductions > 0 ? Rule::reductions : 1;
  double terms[R][kStage];
  double lane[R][dlopt::detail::LaneSum::kLanes];  ///< plain doubles: no initializer in shared memory
};

/// Phase 1 of a reduction stage: thread `thread`'s elements' terms into `sh.terms`.
template <class Rule, class C>
DLOPT_HD void reduce_terms_stage(const cpu::Segment<Rule, C>& seg, int64_t off, int64_t end, ReduceShared<Rule>& sh,
                                 int thread) {
  ThreadElements<Rule, C> x(seg, off, end, thread);
  for (int e = 0; e < x.n; ++e) {
    const auto t = Rule::reduce(seg.coeffs, e, x.p, x.g, x.sp);
    for (int r = 0; r < Rule::reductions; ++r) sh.terms[r][thread * kPerThread + e] = t[r];
  }
}

/// The block of chunk `chunk` writes its Rule::reductions sums to partial[chunk · R + r]
/// (`all_threads` and `sh` as for process_chunk).
template <class Rule, class T, class AllThreads>
DLOPT_HD void reduce_chunk(const int64_t* first_chunk, const cpu::Segment<Rule, T>* segments, int64_t count,
                           int64_t chunk, ReduceShared<Rule>& sh, const AllThreads& all_threads, double* partial) {
  constexpr int R = Rule::reductions;
  constexpr int L = dlopt::detail::LaneSum::kLanes;
  static_assert(R * L <= kThreads && kStage % L == 0, "a thread per lane; stages start on lane boundaries");
  const std::size_t lo = blocks::tensor_of(first_chunk, std::size_t(count), chunk);
  const cpu::Segment<Rule, T> seg = segments[lo];
  const int64_t begin = (chunk - first_chunk[lo]) * kChunk;
  const int64_t end = begin + kChunk < seg.size ? begin + kChunk : seg.size;
  all_threads([&](int thread) {
    if (thread < R * L) sh.lane[thread / L][thread % L] = 0.0;
  });
  for (int64_t off = begin; off < end; off += kStage) {
    all_threads([&](int thread) { reduce_terms_stage<Rule, T>(seg, off, end, sh, thread); });
    const int64_t n = end - off < kStage ? end - off : kStage;
    all_threads([&](int thread) {
      if (thread >= R * L) return;
      const double* terms = sh.terms[thread / L];
      double& lane = sh.lane[thread / L][thread % L];
      lane = dlopt::detail::LaneSum::add_lane(lane, thread % L, n, [terms](int64_t j) { return terms[j]; });
    });
  }
  all_threads([&](int thread) {
    if (thread == 0)
      for (int r = 0; r < R; ++r) partial[chunk * R + r] = dlopt::detail::LaneSum::combine(sh.lane[r]);
  });
}

/// Tensor k's sums (its chunks' partial sums added in chunk order, as cpu::reduce adds its blocks)
/// folded into its coefficients by Rule::finish.
template <class Rule, class T>
DLOPT_HD void finish_tensor(const int64_t* first_chunk, cpu::Segment<Rule, T>* segments, int64_t k,
                            const double* partial) {
  constexpr int R = Rule::reductions;
  double sums[R] = {};
  for (int64_t c = first_chunk[k]; c < first_chunk[k + 1]; ++c)
    for (int r = 0; r < R; ++r) sums[r] += partial[c * R + r];
  Rule::finish(segments[k].coeffs, sums, segments[k].rows);
}

}  // namespace dlopt::cuda::detail
