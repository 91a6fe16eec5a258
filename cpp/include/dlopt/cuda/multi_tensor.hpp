#pragma once
/// @file cuda/multi_tensor.hpp
/// The body of the CUDA multi-tensor step kernel, as a DLOPT_HD function: the kernel (cuda/step.cu)
/// calls it for its block and thread, and the C++ tests run it on the host for every (chunk, thread)
/// of a launch to check the indexing (tensor search, packs, tails, unaligned buffers) without a GPU.
/// Internal to dlopt.
///
/// Layout: every tensor is cut into chunks of kChunk elements, numbered across tensors
/// (first_chunk[k] = index of tensor k's first chunk; first_chunk[count] = total). One block per
/// chunk; its threads walk the chunk in 16-byte packs when all of the tensor's buffers are 16-byte
/// aligned, else element by element.

#include <cstdint>

#include "dlopt/core/blocks.hpp"
#include "dlopt/core/step.hpp"

#if defined(__CUDA_ARCH__)
#define DLOPT_UNROLL _Pragma("unroll")
#else
#define DLOPT_UNROLL
#endif

namespace dlopt::cuda::detail {

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

/// Thread `thread` of `threads` processes its elements of chunk `chunk` (0 <= chunk < total).
template <class Rule, class T>
DLOPT_HD void process_chunk(const int64_t* first_chunk, const cpu::Segment<Rule, T>* segments,
                            int64_t count, int64_t chunk, int thread, int threads) {
  constexpr int V = int(16 / sizeof(T));
  constexpr int S = int(num_slots<Rule>);
  // The tensor of this chunk (it holds the chunk and is not empty).
  const std::size_t lo = blocks::tensor_of(first_chunk, std::size_t(count), chunk);
  const cpu::Segment<Rule, T> seg = segments[lo];
  const int64_t begin = (chunk - first_chunk[lo]) * kChunk;
  const int64_t end = begin + kChunk < seg.size ? begin + kChunk : seg.size;

  // Native segments only (dlopt::cuda::step refuses others): every buffer holds T.
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

}  // namespace dlopt::cuda::detail
