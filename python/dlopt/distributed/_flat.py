"""A list of arrays of one dtype seen as one flat vector, and the copies in and out of its ranges.

The collectives work on ranges [a, b) of this vector (buckets, shards); these helpers move a range
between the arrays and a contiguous buffer without ever concatenating the whole list.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Iterator, Sequence

import numpy as np


class FlatSpace:
    """Arrays (C-contiguous, one dtype) laid end to end: element k of array i is at offsets[i] + k."""

    def __init__(self, arrays: Sequence[np.ndarray]):
        self.flat = [a.reshape(-1) for a in arrays]  # views: C-contiguous arrays only
        self.offsets = [0]
        for a in self.flat:
            self.offsets.append(self.offsets[-1] + a.size)
        self.size = self.offsets[-1]

    def pieces(self, a: int, b: int) -> Iterator[tuple[int, int, int]]:
        """(array index, start, stop) of the parts of arrays that make up [a, b), in order."""
        i = bisect_right(self.offsets, a) - 1
        while a < b and i < len(self.flat):
            lo, hi = self.offsets[i], self.offsets[i + 1]
            if hi > a:
                yield i, a - lo, min(b, hi) - lo
                a = min(b, hi)
            i += 1

    def views(self, a: int, b: int) -> list[np.ndarray]:
        """The range [a, b) as views of the arrays' flat pieces, in order."""
        return [self.flat[i][s:e] for i, s, e in self.pieces(a, b)]

    def pack(self, a: int, b: int, out: np.ndarray) -> None:
        """out[:b - a] = the range [a, b)."""
        pos = 0
        for i, s, e in self.pieces(a, b):
            out[pos: pos + e - s] = self.flat[i][s:e]
            pos += e - s

    def unpack(self, a: int, b: int, src: np.ndarray) -> None:
        """The range [a, b) = src[:b - a]."""
        pos = 0
        for i, s, e in self.pieces(a, b):
            self.flat[i][s:e] = src[pos: pos + e - s]
            pos += e - s


def even_counts(n: int, parts: int) -> list[int]:
    """n cut into `parts` consecutive counts differing by at most one."""
    q, r = divmod(n, parts)
    return [q + (1 if k < r else 0) for k in range(parts)]
