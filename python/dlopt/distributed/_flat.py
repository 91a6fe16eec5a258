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

    def unpack_pieces(self, pieces, src: np.ndarray) -> None:
        """Copies src into the (array, start, stop) pieces, in order."""
        pos = 0
        for i, s, e in pieces:
            self.flat[i][s:e] = src[pos: pos + e - s]
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


def plan_buckets(space: FlatSpace, bounds: Sequence[int], per_rank: int) -> list[list[list[tuple[int, int, int]]]]:
    """The buckets of a collective over `space` where rank r's part is [bounds[r], bounds[r+1]):
    bucket k holds, for every rank, the k-th chunk of its range as pieces (array, start, stop).

    MPI moves a contiguous block fast (one copy between processes) and a scattered one slowly (Open
    MPI packs it in small fragments), so a chunk is one piece of one array whenever the array is
    large (moved in place, no copy), or a group of small pieces of at most `per_rank` elements in
    all, staged through a contiguous buffer (a copy of small arrays only).
    """
    small = max(1, per_rank // 8)
    per_rank_chunks = []
    for r in range(len(bounds) - 1):
        chunks, group, filled = [], [], 0
        for i, s, e in space.pieces(bounds[r], bounds[r + 1]):
            if e - s >= small:  # a large piece: chunks of its own
                if group:
                    chunks.append(group)
                    group, filled = [], 0
                chunks += [[(i, a, min(e, a + per_rank))] for a in range(s, e, per_rank)]
                continue
            if filled + e - s > per_rank:
                chunks.append(group)
                group, filled = [], 0
            group.append((i, s, e))
            filled += e - s
        if group:
            chunks.append(group)
        per_rank_chunks.append(chunks)
    count = max([len(c) for c in per_rank_chunks] + [0])
    return [[c[k] if k < len(c) else [] for c in per_rank_chunks] for k in range(count)]


def staged_size(plan) -> int:
    """Elements of the staging buffer :func:`bucket_arrays` needs for `plan` (its groups of small pieces)."""
    return sum(sum(e - s for _, s, e in part) for bucket in plan for part in bucket if len(part) > 1)


def bucket_arrays(flat: Sequence[np.ndarray], plan, stage: np.ndarray, pack) -> list[list[np.ndarray]]:
    """arrays[k][q]: rank q's part of bucket k as one contiguous array: the single piece itself (in
    place), or the next slice of `stage` (:func:`staged_size` elements), filled from the pieces when
    ``pack(q)``."""
    arrays, pos = [], 0
    for bucket in plan:
        row = []
        for q, part in enumerate(bucket):
            if len(part) == 1:
                i, s, e = part[0]
                row.append(flat[i][s:e])
                continue
            n = sum(e - s for _, s, e in part)
            row.append(part_array(flat, part, stage[pos: pos + n], pack(q)) if part else stage[:0])
            pos += n
        arrays.append(row)
    return arrays


def part_array(flat: Sequence[np.ndarray], pieces, stage: np.ndarray, pack: bool) -> np.ndarray:
    """A rank's part of a bucket as one contiguous array: the single piece itself (in place), or
    `stage` (filled from the pieces when `pack`)."""
    if len(pieces) == 1:
        i, s, e = pieces[0]
        return flat[i][s:e]
    pos = 0
    for i, s, e in pieces:
        if pack:
            stage[pos: pos + e - s] = flat[i][s:e]
        pos += e - s
    return stage[:pos]
