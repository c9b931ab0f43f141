"""Window sums that slide from one evaluation to the next instead of re-adding every bucket.

A key is evaluated at every bucket boundary, and each rule reads a window ending there (and a
spike rule several more, its baseline). Summing a 24-hour window of one-minute buckets anew
at each boundary is 1,440 merges per rule and key and minute: cheap for a live worker (a few
keys a second), ruinous for ``replay`` of a month (tens of millions of evaluations). Here a
window's sum is kept, and the next boundary's window is the kept one plus the buckets that
entered and minus those that left: two merges per step, whatever the window's length.

Sums hold no reply samples (the rules read numbers only; evidence is summed apart, with
``KeyBuckets.window(..., with_replies=True)``). They must equal what summing the buckets
gives at every moment, so ``KeyBuckets`` tells them about every change to a bucket inside
a kept window: counts merged into it (``add``) and buckets pruned (``drop``). A pruned
bucket is taken out of the sums holding it at once, as sliding could not subtract it later:
the sums then start where the buckets still do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregation.buckets import Counts
    from aggregation.frozen import BucketMap

#: At most this many sums per key: a rule set's windows and baselines need about a dozen.
MAX_KEPT = 24


class SlidingSums:
    """The window sums of one key, kept between evaluations (module notes)."""

    __slots__ = ("_empty", "_floor", "_kept", "_size")

    def __init__(self, bucket_seconds: int, empty: Counts) -> None:
        self._size = bucket_seconds
        #: A sum of nothing, copied to start a sum (``Counts`` is not importable here).
        self._empty = empty
        #: (start, end) → the sum of the buckets in [start, end), without replies.
        self._kept: dict[tuple[int, int], Counts] = {}
        #: Buckets before this were pruned: no kept sum starts before it.
        self._floor: int | None = None

    def window(self, buckets: BucketMap, start: int, end: int) -> Counts:
        """The sum of ``buckets`` in ``[start, end)`` (aligned), without reply samples; the
        caller owns the result."""
        kept = self._kept
        total = kept.get((start, end))
        if total is None:
            if self._floor is not None and start < self._floor:
                return self._summed(buckets, start, end)  # reaches pruned buckets: not kept
            total = self._slid(buckets, start, end)
            if total is None:
                total = self._summed(buckets, start, end)
            if len(kept) >= MAX_KEPT:
                del kept[min(kept, key=lambda w: (w[1], w[0]))]
            kept[(start, end)] = total
        return total.copy(with_replies=False)

    def _summed(self, buckets: BucketMap, start: int, end: int) -> Counts:
        total = self._empty.copy(with_replies=False)
        for _, counts in buckets.between(start, end):
            total.merge(counts, with_replies=False)
        return total

    def _slid(self, buckets: BucketMap, start: int, end: int) -> Counts | None:
        """The kept sum closest to ``[start, end)``, moved there (and no longer kept under
        its old window), if moving it is cheaper than summing anew."""
        size = self._size
        best: tuple[int, int] | None = None
        cost = min((end - start) // size, len(buckets))  # summing anew
        for s, e in self._kept:
            moves = (abs(start - s) + abs(end - e)) // size
            if moves < cost:
                best, cost = (s, e), moves
        if best is None:
            return None
        total = self._kept.pop(best)
        s0, e0 = best
        for add, lo, hi in (
            (True, e0, end),  # the end moved on: buckets entered
            (False, end, e0),  # the end moved back
            (False, s0, start),  # the start moved on: buckets left
            (True, start, s0),  # the start moved back
        ):
            for s in range(lo, hi, size):
                counts = buckets.get(s)
                if counts is not None:
                    if add:
                        total.merge(counts, with_replies=False)
                    else:
                        total.subtract(counts)
        return total

    def add(self, start: int, counts: Counts) -> None:
        """``counts`` were merged into the bucket at ``start``."""
        for (s, e), total in self._kept.items():
            if s <= start < e:
                total.merge(counts, with_replies=False)

    def reaches(self, floor: int) -> bool:
        """Whether a kept sum holds buckets before ``floor``."""
        if self._floor is not None and floor <= self._floor:
            return False  # every kept sum starts at the floor or later
        return any(s < floor for s, _ in self._kept)

    def drop(self, floor: int, dropped: Mapping[int, Counts]) -> None:
        """The buckets in ``dropped``, all of those before ``floor``, are being pruned: the
        sums holding them let them go and start at ``floor``."""
        if self._floor is not None and floor <= self._floor:
            return  # every kept sum starts at the floor or later: none holds them
        self._floor = floor
        kept = self._kept
        for window in [w for w in kept if w[0] < floor]:
            s, e = window
            total = kept.pop(window)
            if e <= floor:
                continue
            for start, counts in dropped.items():
                if s <= start < e:
                    total.subtract(counts)
            kept.setdefault((floor, e), total)
