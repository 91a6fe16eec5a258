#pragma once
// Loads and stores between a Buffer's storage and compute-type arrays: the CPU loop stages
// non-native buffers through these, and storage.cpp converts whole buffers with them.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "dlopt/core/formats.hpp"
#include "dlopt/core/storage.hpp"

namespace dlopt::cpu {

/// out[0..n) = elements [begin, begin + n) of `b`, converted to C (begin: a multiple of kQuantBlock).
template <class C>
inline void load(const Buffer& b, int64_t begin, int64_t n, C* __restrict out) {
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

/// Stores in[0..n) into `b` from `begin`: floats converted (16-bit formats to nearest even; bfloat16
/// stochastically when `stochastic`, from the random bits of `key`), 8-bit formats quantized block by block with the block's new absolute maximum.
/// The rounding dither of element i: 0.5 (to nearest, half up) or uniform from the hash.
inline float dither(bool stochastic, uint64_t key, int64_t i) {
  return stochastic ? formats::dither(formats::random_bits(key, i)) : 0.5f;
}

template <class C>
inline void store(const Buffer& b, int64_t begin, int64_t n, const C* __restrict in,
                  bool stochastic = false, uint64_t key = 0) {
  switch (b.storage) {
    case Storage::Float64: {
      double* __restrict x = static_cast<double*>(b.data) + begin;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = double(in[i]);
      break;
    }
    case Storage::Float16: {
      uint16_t* __restrict x = static_cast<uint16_t*>(b.data) + begin;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = formats::float_to_f16(float(in[i]));
      break;
    }
    case Storage::Float32: {
      float* __restrict x = static_cast<float*>(b.data) + begin;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i) x[i] = float(in[i]);
      break;
    }
    case Storage::BFloat16: {
      uint16_t* __restrict x = static_cast<uint16_t*>(b.data) + begin;
#pragma omp simd
      for (int64_t i = 0; i < n; ++i)
        x[i] = stochastic ? formats::float_to_bf16_sr(float(in[i]), formats::random_bits(key, begin + i))
                          : formats::float_to_bf16(float(in[i]));
      break;
    }
    case Storage::Int8:
    case Storage::UInt8:
      for (int64_t q = 0; q < n; q += kQuantBlock) {
        const int64_t m = std::min(kQuantBlock, n - q);
        float absmax = 0.0f, nonfinite = 0.0f;  // nonfinite becomes NaN if any value is inf or NaN
#pragma omp simd reduction(max : absmax) reduction(+ : nonfinite)
        for (int64_t i = 0; i < m; ++i) {
          const float v = float(in[q + i]);
          absmax = std::max(absmax, std::fabs(v));
          nonfinite += v * 0.0f;
        }
        const float scale = nonfinite == 0.0f ? absmax : std::numeric_limits<float>::quiet_NaN();
        const float inv = formats::block_inverse(scale);
        b.scale[(begin + q) / kQuantBlock] = scale;
        if (b.storage == Storage::Int8) {
          int8_t* __restrict x = static_cast<int8_t*>(b.data) + begin + q;
#pragma omp simd
          for (int64_t i = 0; i < m; ++i)
            x[i] = formats::encode_signed(float(in[q + i]), inv, dither(stochastic, key, begin + q + i));
        } else {
          uint8_t* __restrict x = static_cast<uint8_t*>(b.data) + begin + q;
#pragma omp simd
          for (int64_t i = 0; i < m; ++i)
            x[i] = formats::encode_unsigned(float(in[q + i]), inv, dither(stochastic, key, begin + q + i));
        }
      }
      break;
  }
}

}  // namespace dlopt::cpu
