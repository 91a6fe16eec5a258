#pragma once
// Loads and stores between a Buffer's storage and compute-type arrays: the CPU loop stages
// non-native buffers through these, and storage.cpp converts whole buffers with them.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "dlopt/core/formats.hpp"
#include "dlopt/core/storage.hpp"

namespace dlopt::cpu {

/// out[0..n) = elements [begin, begin + n) of `b`, converted to C (begin: a multiple of kQuantBlock).
template <class C>
[[gnu::always_inline]] inline void load(const Buffer& b, int64_t begin, int64_t n, C* __restrict out) {
  switch (b.storage) {
    case Storage::Float64: {
      const double* __restrict x = static_cast<const double*>(b.data) + begin;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) out[i] = C(x[i]);
      break;
    }
    case Storage::Float32: {
      const float* __restrict x = static_cast<const float*>(b.data) + begin;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) out[i] = C(x[i]);
      break;
    }
    case Storage::BFloat16: {
      const uint16_t* __restrict x = static_cast<const uint16_t*>(b.data) + begin;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) out[i] = C(formats::bf16_to_float(x[i]));
      break;
    }
    case Storage::Float16: {
      const uint16_t* __restrict x = static_cast<const uint16_t*>(b.data) + begin;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) out[i] = C(formats::f16_to_float(x[i]));
      break;
    }
    case Storage::Int8:
    case Storage::UInt8:
      for (int64_t q = 0; q < n; q += kQuantBlock) {
        const float scale = b.scale[(begin + q) / kQuantBlock];
        const int64_t m = std::min(kQuantBlock, n - q);
        if (b.storage == Storage::Int8) {
          const int8_t* __restrict x = static_cast<const int8_t*>(b.data) + begin + q;
#pragma omp simd
          for (int64_t i = 0; i < m; ++i) out[q + i] = C(formats::decode_signed(x[i], scale));
        } else {
          const uint8_t* __restrict x = static_cast<const uint8_t*>(b.data) + begin + q;
#pragma omp simd
          for (int64_t i = 0; i < m; ++i) out[q + i] = C(formats::decode_unsigned(x[i], scale));
        }
      }
      break;
  }
}

/// Stores in[0..n) into `b` from `begin`: floats converted; bfloat16 and 8-bit codes rounded to
/// nearest, or stochastically from state slot `slot`'s byte of each element's `random` bits.
template <class C>
[[gnu::always_inline]] inline void store(const Buffer& b, int64_t begin, int64_t n, const C* __restrict in,
                  const uint32_t* __restrict random = nullptr, int slot = 0) {
  switch (b.storage) {
    case Storage::Float64: {
      double* __restrict x = static_cast<double*>(b.data) + begin;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = double(in[i]);
      break;
    }
    case Storage::Float32: {
      float* __restrict x = static_cast<float*>(b.data) + begin;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = float(in[i]);
      break;
    }
    case Storage::Float16: {
      uint16_t* __restrict x = static_cast<uint16_t*>(b.data) + begin;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = formats::float_to_f16(float(in[i]));
      break;
    }
    case Storage::BFloat16: {
      uint16_t* __restrict x = static_cast<uint16_t*>(b.data) + begin;
      if (random) {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i)
          x[i] = formats::float_to_bf16_sr(float(in[i]), formats::bf16_state_dither(random[i], slot));
      } else {
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) x[i] = formats::float_to_bf16(float(in[i]));
      }
      break;
    }
    case Storage::Int8:
    case Storage::UInt8:
      for (int64_t q = 0; q < n; q += kQuantBlock) {
        const int64_t m = std::min(kQuantBlock, n - q);
        // The largest |x| as bits: non-negative floats order as their bit patterns, and inf / NaN
        // patterns exceed every finite one, so one integer max finds both.
        uint32_t absmax = 0;
#pragma omp simd reduction(max : absmax)
        for (int64_t i = 0; i < m; ++i) absmax = std::max(absmax, formats::bits_of(float(in[q + i])) & 0x7fffffffU);
        const float scale = absmax < 0x7f800000U ? formats::float_of(absmax) : std::numeric_limits<float>::quiet_NaN();
        const float inv = formats::block_inverse(scale);
        b.scale[(begin + q) / kQuantBlock] = scale;
        const uint32_t* __restrict r = random ? random + q : nullptr;
        // The codes of one block, to nearest or with each element's dither, into bytes of type Byte.
        auto codes = [&](auto* __restrict x, auto encode) {
          using Byte = std::remove_reference_t<decltype(x[0])>;
          if (r) {
#pragma omp simd
            for (int64_t i = 0; i < m; ++i)
              x[i] = Byte(encode(float(in[q + i]), inv, formats::dither_of_byte(formats::slot_byte(r[i], slot))));
          } else {
#pragma omp simd
            for (int64_t i = 0; i < m; ++i) x[i] = Byte(encode(float(in[q + i]), inv, formats::kHalfDither));
          }
        };
        if (b.storage == Storage::Int8)
          codes(static_cast<int8_t*>(b.data) + begin + q,
                [](float v, float iv, uint32_t d) { return formats::encode_signed(v, iv, d); });
        else
          codes(static_cast<uint8_t*>(b.data) + begin + q,
                [](float v, float iv, uint32_t d) { return formats::encode_unsigned(v, iv, d); });
      }
      break;
  }
}

}  // namespace dlopt::cpu
