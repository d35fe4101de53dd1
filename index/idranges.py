"""Sets of row ids held as sorted, disjoint half-open ranges ``[start, end)``.

Row ids are SQLite row ids handed out in insertion order by the library's one
writer, so the rows of one video (or of one time window in it) are a few
ranges, not millions of ids: filters travel as ranges, and a segment whose
ids lie outside them is skipped without looking at a vector.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


class IdRanges:
    """Sorted, disjoint ``[start, end)`` id ranges (two int64 arrays)."""

    __slots__ = ("starts", "ends")

    def __init__(self, starts: np.ndarray, ends: np.ndarray) -> None:
        self.starts = np.asarray(starts, dtype=np.int64)
        self.ends = np.asarray(ends, dtype=np.int64)

    # ---- making ---------------------------------------------------------------
    @classmethod
    def empty(cls) -> "IdRanges":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64))

    @classmethod
    def from_ids(cls, ids: Sequence[int] | np.ndarray) -> "IdRanges":
        """The runs of consecutive integers in ``ids`` (any order, duplicates allowed)."""
        a = np.unique(np.asarray(ids, dtype=np.int64))
        if not len(a):
            return cls.empty()
        breaks = np.flatnonzero(np.diff(a) != 1) + 1
        return cls(a[np.r_[0, breaks]], a[np.r_[breaks - 1, len(a) - 1]] + 1)

    @classmethod
    def from_inclusive(cls, pairs: Iterable[tuple[int, int]]) -> "IdRanges":
        """From ``(first, last)`` pairs (inclusive, as SQL ``min(id), max(id)`` gives them), merged."""
        arr = np.asarray(list(pairs), dtype=np.int64).reshape(-1, 2)
        if not len(arr):
            return cls.empty()
        arr = arr[np.argsort(arr[:, 0], kind="stable")]
        starts, ends = arr[:, 0], arr[:, 1] + 1
        # merge touching or overlapping ranges: a range starts a new run when it begins past every earlier end
        run_end = np.maximum.accumulate(ends)
        new = np.r_[True, starts[1:] > run_end[:-1]]
        idx = np.flatnonzero(new)
        return cls(starts[idx], np.maximum.reduceat(ends, idx))

    # ---- asking ---------------------------------------------------------------
    def __len__(self) -> int:
        """How many ids the ranges cover."""
        return int((self.ends - self.starts).sum())

    @property
    def n_ranges(self) -> int:
        return len(self.starts)

    def overlaps(self, lo: int, hi: int) -> bool:
        """Whether any id in ``[lo, hi]`` (inclusive) is covered."""
        i = int(np.searchsorted(self.ends, lo, side="right"))
        return i < len(self.starts) and int(self.starts[i]) <= hi

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """A boolean mask: which of ``ids`` are covered."""
        ids = np.asarray(ids, dtype=np.int64)
        i = np.searchsorted(self.starts, ids, side="right") - 1
        ok = i >= 0
        ok[ok] = ids[ok] < self.ends[i[ok]]
        return ok

    def positions_in_sorted(self, sorted_ids: np.ndarray) -> np.ndarray:
        """Positions of the covered ids within an ascending id array, without a pass over all of it."""
        if not len(sorted_ids) or not len(self.starts):
            return np.zeros(0, np.int64)
        # only the ranges that reach into [first, last]: a filter of a range per video, asked of one
        # segment, looks up the segment's few videos, not every range
        lo = int(np.searchsorted(self.ends, sorted_ids[0], side="right"))
        hi = int(np.searchsorted(self.starts, sorted_ids[-1], side="right"))
        starts, ends = self.starts[lo:hi], self.ends[lo:hi]
        a = np.searchsorted(sorted_ids, starts, side="left")
        b = np.searchsorted(sorted_ids, ends, side="left")
        keep = b > a
        a, b = a[keep], b[keep]
        if not len(a):
            return np.zeros(0, np.int64)
        if len(a) == 1:
            return np.arange(a[0], b[0], dtype=np.int64)
        # concatenated aranges in numpy: ones, with a jump at each range start
        lengths = b - a
        steps = np.ones(int(lengths.sum()), np.int64)
        firsts = np.r_[0, np.cumsum(lengths)[:-1]]
        steps[firsts] = a - np.r_[0, b[:-1] - 1]
        steps[0] = a[0]
        return np.cumsum(steps)

    def __repr__(self) -> str:
        shown = ", ".join(f"[{s}, {e})" for s, e in zip(self.starts[:4].tolist(), self.ends[:4].tolist()))
        more = f", ... {self.n_ranges - 4} more" if self.n_ranges > 4 else ""
        return f"IdRanges({shown}{more})"
