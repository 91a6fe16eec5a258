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


def slot_key(tensor_key: int, k: int) -> int:
    return mix64(tensor_key ^ (k + 1))


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
    index = np.asarray(index, dtype=np.uint64)
    lo = (np.uint64(key & 0xFFFFFFFF) + np.uint64(0x9E3779B9) * (index >> np.uint64(32))) & np.uint64(0xFFFFFFFF)
    first = mix32(((index & np.uint64(0xFFFFFFFF)) + lo) & np.uint64(0xFFFFFFFF))
    return mix32(first ^ np.uint32(key >> 32))


def dither(random: np.ndarray) -> np.ndarray:
    """Uniform in [0, 1) from the top 24 of 32 random bits."""
    return (random >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)


# -- 16-bit parameters ------------------------------------------------------------------------------

def bf16_stochastic(x: np.ndarray, random: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16: add the low 16 random bits to the float's bits, truncate."""
    x = np.asarray(x, np.float32)
    bits = x.view(np.uint32)
    out = ((bits.astype(np.uint64) + (random & np.uint32(0xFFFF))) >> np.uint64(16)).astype(np.uint16)
    finite = np.isfinite(x)
    out[~finite] = x[~finite].astype(BF16).view(np.uint16)
    return out.view(BF16)


def f16_stochastic(x: np.ndarray, random: np.ndarray) -> np.ndarray:
    """float32 -> float16: the nearest value, or the neighbour beyond it with probability
    |x - nearest| / |neighbour - nearest| (compared with the top 24 random bits)."""
    x = np.asarray(x, np.float32)
    h = x.astype(np.float16)
    y = h.astype(np.float32)
    hb = h.view(np.uint16)
    other = np.where(np.abs(y) < np.abs(x), hb + np.uint16(1), hb - np.uint16(1)).astype(np.uint16)
    z = other.view(np.float16).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.abs(x - y) / np.abs(z - y)
    u = (random >> np.uint32(8)).astype(np.float32) * np.float32(2.0 ** -24)
    take_other = (u < p) & (y != x) & np.isfinite(y) & ~np.isnan(x)
    return np.where(take_other, other, hb).astype(np.uint16).view(np.float16)


# -- 8-bit blockwise codes --------------------------------------------------------------------------

def _blocks(x: np.ndarray):
    for b in range(0, x.size, QUANT_BLOCK):
        yield b // QUANT_BLOCK, slice(b, min(b + QUANT_BLOCK, x.size))


def _scale_and_inverse(block: np.ndarray) -> tuple[np.float32, np.float32]:
    if not np.all(np.isfinite(block)):
        return np.float32(np.nan), np.float32(0)
    scale = np.max(np.abs(block)) if block.size else np.float32(0)
    inv = np.float32(1) / scale if scale > 0 else np.float32(0)
    return np.float32(scale), np.float32(inv)


def quantize(x: np.ndarray, signed: bool, dithers: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Blockwise absmax codes, int8 ±min(⌊127·√|x/a| + d⌋, 127) (signed) or uint8
    min(⌊255·(x/a)^¼ + d⌋, 255), d = 0.5 (to nearest) or the given dithers (stochastic)."""
    x = np.asarray(x, np.float32).ravel()
    d = np.full(x.size, 0.5, np.float32) if dithers is None else dithers
    codes = np.zeros(x.size, np.int8 if signed else np.uint8)
    scales = np.zeros((x.size + QUANT_BLOCK - 1) // QUANT_BLOCK, np.float32)
    for j, sl in _blocks(x):
        scale, inv = _scale_and_inverse(x[sl])
        scales[j] = scale
        u = x[sl] * inv
        if signed:
            q = np.minimum(np.floor(np.sqrt(np.clip(np.abs(u), 0, 1)) * np.float32(127) + d[sl]), 127)
            codes[sl] = np.where(x[sl] < 0, -q, q).astype(np.int8)
        else:
            q = np.minimum(np.floor(np.sqrt(np.sqrt(np.clip(u, 0, 1))) * np.float32(255) + d[sl]), 255)
            codes[sl] = q.astype(np.uint8)
    return codes, scales


def dequantize(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes).ravel()
    out = np.empty(codes.size, np.float32)
    inv127 = np.float32(1) / np.float32(127)
    inv255 = np.float32(1) / np.float32(255)
    for j, sl in _blocks(codes):
        if codes.dtype == np.int8:
            t = codes[sl].astype(np.float32) * inv127
            out[sl] = (t * np.abs(t)) * scales[j]
        else:
            t = codes[sl].astype(np.float32) * inv255
            t2 = t * t
            out[sl] = (t2 * t2) * scales[j]
    return out
