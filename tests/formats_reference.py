"""NumPy transcription of dlopt's storage formats (docs/formats.md), written from the documented
definitions, independently of the C++ (cpp/include/dlopt/core/formats.hpp). Every operation is a
float32 / uint32 / uint64 NumPy operation in the documented order, so results can be compared bit
for bit.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

BF16 = np.dtype(ml_dtypes.bfloat16)
QUANT_BLOCK = 256
M64 = (1 << 64) - 1


# -- random bits ------------------------------------------------------------------------------------

def mix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def rounding_key(seed: int, step: int, tensor: int) -> int:
    return mix64(mix64(mix64(seed) ^ step) ^ tensor)


def mix32(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint32)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint32(16)
        x *= np.uint32(0x7FEB352D)
        x ^= x >> np.uint32(15)
        x *= np.uint32(0x846CA68B)
        x ^= x >> np.uint32(16)
    return x


def random_bits(key: int, index: np.ndarray) -> np.ndarray:
    """mix32(i + lo) ^ hi, lo = key's low 32 bits + 0x9e3779b9·(i >> 32), hi = key's high 32 bits."""
    index = np.asarray(index, dtype=np.uint64)
    lo = (np.uint64(key & 0xFFFFFFFF) + np.uint64(0x9E3779B9) * (index >> np.uint64(32))) & np.uint64(0xFFFFFFFF)
    return mix32(((index & np.uint64(0xFFFFFFFF)) + lo) & np.uint64(0xFFFFFFFF)) ^ np.uint32(key >> 32)


def slot_byte(random: np.ndarray, k: int) -> np.ndarray:
    """Slot k's random byte: byte 2 + k of the element's bits (k < 2), else a rehash's top byte."""
    random = np.asarray(random, np.uint32)
    if k < 2:
        return (random >> np.uint32(16 + 8 * k)) & np.uint32(0xFF)
    return mix32(random ^ np.uint32(k)) >> np.uint32(24)


# -- 16-bit parameters ------------------------------------------------------------------------------

def bf16_stochastic(x: np.ndarray, dither: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16: add a 16-bit dither to the float's bits, truncate."""
    x = np.asarray(x, np.float32)
    bits = x.view(np.uint32)
    out = ((bits.astype(np.uint64) + dither.astype(np.uint64)) >> np.uint64(16)).astype(np.uint16)
    finite = np.isfinite(x)
    out[~finite] = x[~finite].astype(BF16).view(np.uint16)
    return out.view(BF16)


def f16_stochastic(x: np.ndarray, dither: np.ndarray) -> np.ndarray:
    """float32 -> float16: the nearest value, or the neighbour beyond it with probability
    |x - nearest| / |neighbour - nearest| (compared with dither / 2^16)."""
    x = np.asarray(x, np.float32)
    h = x.astype(np.float16)
    y = h.astype(np.float32)
    hb = h.view(np.uint16)
    other = np.where(np.abs(y) < np.abs(x), hb + np.uint16(1), hb - np.uint16(1)).astype(np.uint16)
    z = other.view(np.float16).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.abs(x - y) / np.abs(z - y)
    u = dither.astype(np.float32) * np.float32(2.0 ** -16)
    take_other = (u < p) & (y != x) & np.isfinite(y) & ~np.isnan(x)
    return np.where(take_other, other, hb).astype(np.uint16).view(np.float16)


# -- 8-bit blockwise codes --------------------------------------------------------------------------
#
# Per block of 256: a = max |x| (NaN if any value is not finite, then codes 0); u = |x|·(1/a).
# Magnitude code c: 0 is zero, c >= 8 is 2^((c >> 3) - B)·(1 + (c & 7)/8); B = 15 (int8: bit 7 is
# the sign) or 31 (uint8). u >= 2^(1-B): the float32 bits of u plus a 20-bit dither, truncated to
# 3 mantissa bits; below: 0. Dither 2^19: to nearest; (byte << 12) | 2^11: stochastic.

HALF_DITHER = 1 << 19


def dither_of_byte(byte: np.ndarray) -> np.ndarray:
    return (np.asarray(byte, np.uint32) << np.uint32(12)) | np.uint32(1 << 11)


def _magnitude_code(u: np.ndarray, d: np.ndarray, bias: int) -> np.ndarray:
    u = np.asarray(u, np.float32)
    b = (u.view(np.uint32).astype(np.uint64) + d.astype(np.uint64)) & np.uint64(0xFFFFFFFF)
    code = (((b >> np.uint64(23)).astype(np.int64) + bias - 127) << 3) | ((b >> np.uint64(20)) & np.uint64(7)).astype(np.int64)
    with np.errstate(invalid="ignore"):
        return np.where(u >= np.float32(2.0 ** (1 - bias)), code, 0)


def _magnitude_value(c: np.ndarray, bias: int) -> np.ndarray:
    c = np.asarray(c, np.int64)
    bits = (((c >> 3) + 127 - bias) << 23) | ((c & 7) << 20)
    v = (bits & 0xFFFFFFFF).astype(np.uint32).view(np.float32)
    return np.where(c == 0, np.float32(0), v)


def _blocks(n: int):
    for b in range(0, n, QUANT_BLOCK):
        yield b // QUANT_BLOCK, slice(b, min(b + QUANT_BLOCK, n))


def quantize(x: np.ndarray, signed: bool, dithers: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Blockwise codes and scales of x; `dithers`: a 20-bit dither per element (None: to nearest)."""
    x = np.asarray(x, np.float32).ravel()
    d = np.full(x.size, HALF_DITHER, np.uint32) if dithers is None else dithers
    codes = np.zeros(x.size, np.int8 if signed else np.uint8)
    scales = np.zeros((x.size + QUANT_BLOCK - 1) // QUANT_BLOCK, np.float32)
    for j, sl in _blocks(x.size):
        block = x[sl]
        if np.all(np.isfinite(block)):
            scale = np.max(np.abs(block))
            inv = np.float32(1) / scale if scale > 0 else np.float32(0)
        else:
            scale, inv = np.float32(np.nan), np.float32(0)
        scales[j] = scale
        with np.errstate(invalid="ignore"):
            u = block * inv
        if signed:
            c = _magnitude_code(np.abs(u), d[sl], 15) | ((block.view(np.uint32) >> np.uint32(31)).astype(np.int64) << 7)
            codes[sl] = c.astype(np.uint8).view(np.int8)
        else:
            codes[sl] = _magnitude_code(u, d[sl], 31).astype(np.uint8)
    return codes, scales


def dequantize(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes).ravel()
    out = np.empty(codes.size, np.float32)
    for j, sl in _blocks(codes.size):
        if codes.dtype == np.int8:
            c = codes[sl].view(np.uint8).astype(np.int64)
            v = _magnitude_value(c & 0x7F, 15) * scales[j]
            out[sl] = np.where(c >> 7 == 1, -v, v)
        else:
            out[sl] = _magnitude_value(codes[sl].astype(np.int64), 31) * scales[j]
    return out
