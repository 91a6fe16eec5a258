#pragma once
/// @file formats.hpp
/// Element conversions between the compute type (float) and the storage formats of storage.hpp,
/// the counter-based random bits of stochastic rounding, and the 8-bit blockwise codes. Each is a
/// small DLOPT_HD function written once; docs/formats.md states them and tests/formats_reference.py
/// transcribes them in NumPy (the tests require bit equality).

#include <cmath>
#include <cstdint>
#include <cstring>

#include "dlopt/core/device.hpp"

namespace dlopt::formats {

DLOPT_HD uint32_t bits_of(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
#endif
}

DLOPT_HD float float_of(uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(b);
#else
  float x;
  std::memcpy(&x, &b, sizeof x);
  return x;
#endif
}

// ---- random bits: a hash of (key, element index), no RNG state --------------------------------

/// A 32-bit integer hash with good avalanche (the "lowbias32" constants of Wellons' hash search).
DLOPT_HD uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

/// splitmix64's finalizer: turns (seed, step, tensor) into a per-tensor, per-step key.
DLOPT_HD uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// The key of one tensor at one step (its parameter's rounding).
DLOPT_HD uint64_t rounding_key(uint64_t seed, int64_t step, uint64_t tensor) {
  return mix64(mix64(mix64(seed) ^ uint64_t(step)) ^ tensor);
}

/// The key of state slot k of that tensor at that step.
DLOPT_HD uint64_t slot_key(uint64_t tensor_key, int k) { return mix64(tensor_key ^ uint64_t(k + 1)); }

/// 32 random bits for element `i` of a tensor whose step key is `key`: the same on every thread
/// count and backend, since they depend on nothing else.
DLOPT_HD uint32_t random_bits(uint64_t key, int64_t i) {
  const uint32_t lo = uint32_t(key) + 0x9e3779b9U * uint32_t(uint64_t(i) >> 32);
  return mix32(mix32(uint32_t(i) + lo) ^ uint32_t(key >> 32));
}

// ---- bfloat16 ------------------------------------------------------------------------------------

DLOPT_HD float bf16_to_float(uint16_t h) { return float_of(uint32_t(h) << 16); }

/// Round to nearest even; NaN stays a (quiet) NaN.
DLOPT_HD uint16_t float_to_bf16(float x) {
  const uint32_t b = bits_of(x);
  if ((b & 0x7fffffffU) > 0x7f800000U) return uint16_t((b >> 16) | 0x40U);
  return uint16_t((b + 0x7fffU + ((b >> 16) & 1U)) >> 16);
}

/// Stochastic rounding: up in magnitude with probability (distance to the lower neighbour) /
/// (spacing), from the low 16 of `random`. Infinities and NaN round to nearest.
DLOPT_HD uint16_t float_to_bf16_sr(float x, uint32_t random) {
  const uint32_t b = bits_of(x);
  if ((b & 0x7f800000U) == 0x7f800000U) return float_to_bf16(x);
  return uint16_t((b + (random & 0xffffU)) >> 16);
}

// ---- float16 (host; IEEE binary16 through the compiler's _Float16) -------------------------------

#if !defined(__CUDACC__)
inline float f16_to_float(uint16_t h) {
  _Float16 v;
  std::memcpy(&v, &h, sizeof v);
  return float(v);
}

/// Round to nearest even (the conversion of the C++ cast).
inline uint16_t float_to_f16(float x) {
  const _Float16 v = _Float16(x);
  uint16_t h;
  std::memcpy(&h, &v, sizeof h);
  return h;
}

/// Stochastic rounding: the neighbour beyond the nearest one (one ulp further towards x) is taken
/// with probability |x − nearest| / |other − nearest|, compared with the top 24 of `random`.
inline uint16_t float_to_f16_sr(float x, uint32_t random) {
  const uint16_t h = float_to_f16(x);
  const float y = f16_to_float(h);
  if (y == x || !std::isfinite(y) || x != x) return h;
  const uint16_t other = std::fabs(y) < std::fabs(x) ? uint16_t(h + 1) : uint16_t(h - 1);
  const float z = f16_to_float(other);
  const float p = std::fabs(x - y) / std::fabs(z - y);
  const float u = float(random >> 8) * 0x1p-24f;
  return u < p ? other : h;
}
#endif

// ---- 8-bit blockwise codes -----------------------------------------------------------------------
//
// A block of kQuantBlock values is stored as its absolute maximum a (float32) and one code per
// value, on a power-law (companded) scale that spends its codes near zero, where most moment
// values lie; d is the dither, 0.5 (round half up) or uniform in [0, 1) (stochastic rounding):
//   Int8  (signed values):       q = ±min(⌊127·√|x/a| + d⌋, 127),     x = a·(q/127)·|q/127|
//   UInt8 (non-negative values): q = min(⌊255·(x/a)^(1/4) + d⌋, 255), x = a·((q/255)²)²
// A non-finite value makes the block's scale NaN (so the NaN is not lost) and its codes 0.

constexpr float kInv127 = 1.0f / 127.0f;
constexpr float kInv255 = 1.0f / 255.0f;

DLOPT_HD float clamp01(float u) { return u < 0.0f ? 0.0f : (u > 1.0f ? 1.0f : u); }

/// A dither in [0, 1) from the top 24 of 32 random bits.
DLOPT_HD float dither(uint32_t random) { return float(random >> 8) * 0x1p-24f; }

/// `inv` is 1/a for a finite a > 0, else 0.
DLOPT_HD int8_t encode_signed(float x, float inv, float dither) {
  const float u = clamp01(std::fabs(x * inv));
  const float c = std::floor(std::sqrt(u) * 127.0f + dither);
  const float q = c < 127.0f ? c : 127.0f;
  return int8_t(x < 0.0f ? -q : q);
}

DLOPT_HD float decode_signed(int8_t q, float scale) {
  const float t = float(q) * kInv127;
  return (t * std::fabs(t)) * scale;
}

DLOPT_HD uint8_t encode_unsigned(float x, float inv, float dither) {
  const float u = clamp01(x * inv);
  const float c = std::floor(std::sqrt(std::sqrt(u)) * 255.0f + dither);
  return uint8_t(c < 255.0f ? c : 255.0f);
}

DLOPT_HD float decode_unsigned(uint8_t q, float scale) {
  const float t = float(q) * kInv255;
  const float t2 = t * t;
  return (t2 * t2) * scale;
}

/// The scale stored for a block with absolute maximum `absmax` (NaN if a value was not finite),
/// and the factor that encode_* multiplies by.
DLOPT_HD float block_inverse(float scale) {
  return scale > 0.0f && scale <= 3.4028234663852886e38f ? 1.0f / scale : 0.0f;
}

}  // namespace dlopt::formats
