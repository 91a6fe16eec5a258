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

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#endif

namespace dlopt::formats {

/// The bits of a float.
DLOPT_HD uint32_t bits_of(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
#endif
}

/// The float of these bits.
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
//
// One 32-bit hash per element and step serves every rounding of that element: bits 0-15 round a
// 16-bit parameter, byte 2 + k dithers state slot k (k = 0, 1; further slots hash again).

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

/// The key of one tensor at one step.
DLOPT_HD uint64_t rounding_key(uint64_t seed, int64_t step, uint64_t tensor) {
  return mix64(mix64(mix64(seed) ^ uint64_t(step)) ^ tensor);
}

/// The part of random_bits' key that is constant over any 2³² elements, so that loops compute it
/// once and hash 32-bit indices only (which vectorizes).
struct BitsKey {
  uint32_t lo;  ///< added to the 32-bit element index before mixing
  uint32_t hi;  ///< xor-ed into the mixed bits
};
/// The BitsKey of element `i`'s 2³²-element range under step key `key`.
DLOPT_HD BitsKey bits_key(uint64_t key, int64_t i) {
  return {uint32_t(key) + 0x9e3779b9U * uint32_t(uint64_t(i) >> 32), uint32_t(key >> 32)};
}
/// random_bits(key, i) from the element's BitsKey and the low 32 bits of its index.
DLOPT_HD uint32_t random_bits(BitsKey k, uint32_t i) { return mix32(i + k.lo) ^ k.hi; }

/// The 32 random bits of element `i` of a tensor whose step key is `key`: the same for every
/// thread count and backend, since they depend on nothing else.
DLOPT_HD uint32_t random_bits(uint64_t key, int64_t i) { return random_bits(bits_key(key, i), uint32_t(i)); }

/// The random byte of state slot k in an element's random bits.
DLOPT_HD uint32_t slot_byte(uint32_t random, int k) {
  return k < 2 ? (random >> (16 + 8 * k)) & 0xffU : mix32(random ^ uint32_t(k)) >> 24;
}

/// The 16-bit dither that stochastically rounds a 16-bit parameter: its element's low 16 random bits.
DLOPT_HD uint32_t param_dither(uint32_t random) { return random & 0xffffU; }

/// The 16-bit dither of bfloat16 state slot k: the slot's random byte, centred on the low byte.
DLOPT_HD uint32_t bf16_state_dither(uint32_t random, int k) { return slot_byte(random, k) << 8 | 0x80U; }

// ---- bfloat16 ------------------------------------------------------------------------------------

/// The float of bfloat16 bits (exact).
DLOPT_HD float bf16_to_float(uint16_t h) { return float_of(uint32_t(h) << 16); }

/// Round to nearest even; NaN stays a (quiet) NaN.
DLOPT_HD uint16_t float_to_bf16(float x) {
  const uint32_t b = bits_of(x);
  if ((b & 0x7fffffffU) > 0x7f800000U) return uint16_t((b >> 16) | 0x40U);
  return uint16_t((b + 0x7fffU + ((b >> 16) & 1U)) >> 16);
}

/// Stochastic rounding: up in magnitude with probability (distance to the lower neighbour) /
/// (spacing), from the 16 bits `dither` (< 2^16). Infinities and NaN round to nearest.
DLOPT_HD uint16_t float_to_bf16_sr(float x, uint32_t dither) {
  const uint32_t b = bits_of(x);
  // An infinity stays one (the dither never carries into the exponent); a NaN stays a quiet NaN.
  const uint16_t rounded = uint16_t((b + dither) >> 16);
  return (b & 0x7fffffffU) > 0x7f800000U ? uint16_t((b >> 16) | 0x40U) : rounded;  // a select: vectorizes
}

// ---- float16 (IEEE binary16: the compiler's _Float16 on the CPU, cuda_fp16 under nvcc) ----------

#if defined(__CUDACC__)
/// The float of IEEE binary16 bits (exact).
DLOPT_HD float f16_to_float(uint16_t h) { return __half2float(__ushort_as_half(h)); }

/// Round to nearest even (IEEE's conversion, as the C++ cast on the CPU).
DLOPT_HD uint16_t float_to_f16(float x) { return __half_as_ushort(__float2half_rn(x)); }
#else
/// The float of IEEE binary16 bits (exact).
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
#endif

/// Stochastic rounding: the neighbour beyond the nearest one (one ulp further towards x) is taken
/// with probability |x − nearest| / |other − nearest|, compared with `dither`/2^16 (dither < 2^16).
DLOPT_HD uint16_t float_to_f16_sr(float x, uint32_t dither) {
  const uint16_t h = float_to_f16(x);
  const float y = f16_to_float(h);
  if (y == x || !std::isfinite(y) || x != x) return h;
  const uint16_t other = std::fabs(y) < std::fabs(x) ? uint16_t(h + 1) : uint16_t(h - 1);
  const float z = f16_to_float(other);
  const float p = std::fabs(x - y) / std::fabs(z - y);
  const float u = float(dither) * 0x1p-16f;
  return u < p ? other : h;
}

// ---- 8-bit blockwise codes -----------------------------------------------------------------------
//
// A block of kQuantBlock values is stored as its absolute maximum a (float32) and one byte per
// value: a tiny floating-point number for u = |x|/a ∈ [0, 1] with 3 mantissa bits, as FP8 optimizer
// states (FP8-LM, Peng et al. 2023) and the dynamic exponent of 8-bit Adam (Dettmers et al. 2022)
// spend codes evenly over orders of magnitude, where moments spread:
//   magnitude code c = 0: zero;  c >= 8: 2^((c >> 3) − B) · (1 + (c & 7)/8)
//   Int8  (signed values):       bit 7 the sign, bits 0-6 c, B = 15 (15 binades), c <= 120
//   UInt8 (non-negative values): c,                          B = 31 (31 binades), c <= 248
// Encoding adds the dither to the 20 bits of u's float32 mantissa that are dropped: 2^19 rounds to
// nearest (half up); (D << 12) | 2^11 with a random byte D rounds stochastically. u below the
// smallest code, 2^(1−B), is flushed to 0 (under 2^-14 of the block maximum for Int8, 2^-30 for
// UInt8). Integer operations only: exact, and vectorizable. A non-finite value makes the block's
// scale NaN (so the NaN is not lost) and its codes 0.

constexpr int kSignedBias = 15;    ///< B of the Int8 codes' exponent (7 magnitude bits)
constexpr int kUnsignedBias = 31;  ///< B of the UInt8 codes' exponent (8 magnitude bits)
constexpr uint32_t kHalfDither = 1U << 19;  ///< the dither of rounding to nearest

/// The 20-bit dither of a random byte.
DLOPT_HD uint32_t dither_of_byte(uint32_t byte) { return byte << 12 | 1U << 11; }

/// The magnitude code of u ∈ [0, 1] with exponent bias B and dither d (< 2^20). A negative or NaN
/// u, or one below 2^(1−B), gives 0; u = |x|/a exceeds 1 by at most the rounding of 1/a, which
/// leaves the code of 1.
template <int B>
DLOPT_HD uint32_t magnitude_code(float u, uint32_t d) {
  const uint32_t b = bits_of(u) + d;
  const uint32_t code = ((b >> 23) + uint32_t(B - 127)) << 3 | ((b >> 20) & 7U);
  return u >= float_of(uint32_t(128 - B) << 23) ? code : 0U;  // 2^(1−B)
}

/// The float bits of magnitude code `c` (exponent bias B), 0 for code 0: the inverse of magnitude_code.
template <int B>
DLOPT_HD uint32_t magnitude_bits(uint32_t c) {
  const uint32_t bits = ((c >> 3) + uint32_t(127 - B)) << 23 | (c & 7U) << 20;
  return c == 0 ? 0U : bits;
}

/// The Int8 code (as an int32: loops narrow it separately); `inv` is 1/a for a finite a > 0, else 0.
DLOPT_HD int32_t encode_signed(float x, float inv, uint32_t dither) {
  return int32_t(magnitude_code<kSignedBias>(std::fabs(x * inv), dither) | (bits_of(x) >> 31) << 7);
}

/// The value of Int8 code `q` in a block of scale `scale`.
DLOPT_HD float decode_signed(int8_t q, float scale) {
  const uint32_t c = uint32_t(uint8_t(q));
  return float_of(magnitude_bits<kSignedBias>(c & 0x7fU) | (c >> 7) << 31) * scale;
}

/// The UInt8 code (as an int32, as encode_signed).
DLOPT_HD int32_t encode_unsigned(float x, float inv, uint32_t dither) {
  return int32_t(magnitude_code<kUnsignedBias>(x * inv, dither));
}

/// The value of UInt8 code `q` in a block of scale `scale`.
DLOPT_HD float decode_unsigned(uint8_t q, float scale) {
  return float_of(magnitude_bits<kUnsignedBias>(q)) * scale;
}

/// The factor encode_* multiplies by: 1/scale for a finite scale > 0, else 0.
DLOPT_HD float block_inverse(float scale) {
  return scale > 0.0f && scale <= 3.4028234663852886e38f ? 1.0f / scale : 0.0f;
}

}  // namespace dlopt::formats
