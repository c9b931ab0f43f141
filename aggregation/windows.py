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
a kept window: counts merged into it (``add``) and buckets pruned (``forget_before``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregation.buckets import Counts

#: At most this many sums per key: a rule set's windows and baselines need about a dozen.
MAX_KEPT = 24


class SlidingSums:
    """The window sums of one key, kept between evaluations (module notes)."""

    __slots__ = ("_empty", "_kept", "_size")

    def __init__(self, bucket_seconds: int, empty: Counts) -> None:
        self._size = bucket_seconds
        #: A sum of nothing, copied to start a sum (``Counts`` is not importable here).
        self._empty = empty
        #: (start, end) → the sum of the buckets in [start, end), without replies.
        self._kept: dict[tuple[int, int], Counts] = {}

    def window(self, buckets: Mapping[int, Counts], start: int, end: int) -> Counts:
        """The sum of ``buckets`` in ``[start, end)`` (aligned), without reply samples; the
        caller owns the result."""
        kept = self._kept
        total = kept.get((start, end))
        if total is None:
            total = self._slid(buckets, start, end)
            if total is None:
                total = self._empty.without_replies()
                for s in range(start, end, self._size):
                    counts = buckets.get(s)
                    if counts is not None:
                        total.merge(counts, with_replies=False)
            if len(kept) >= MAX_KEPT:
                del kept[min(kept, key=lambda w: (w[1], w[0]))]
            kept[(start, end)] = total
        return total.without_replies()

    def _slid(self, buckets: Mapping[int, Counts], start: int, end: int) -> Counts | None:
        """The kept sum of the same length ending closest before ``end``, moved to end at
        ``end`` (and no longer kept under its old window), if moving it is the cheaper way."""
        length, size = end - start, self._size
        best: tuple[int, int] | None = (start - size, end - size)
        if best not in self._kept:  # not the last boundary's window: the nearest earlier one
            best = None
            for s, e in self._kept:
                if e - s == length and e < end and (best is None or e > best[1]):
                    best = (s, e)
        # Moving costs two merges per bucket stepped; summing anew one per bucket in the window.
        if best is None or 2 * (end - best[1]) >= length:
            return None
        total = self._kept.pop(best)
        for s in range(best[1], end, size):
            counts = buckets.get(s)
            if counts is not None:
                total.merge(counts, with_replies=False)
        for s in range(best[0], start, size):
            counts = buckets.get(s)
            if counts is not None:
                total.subtract(counts)
        return total

    def add(self, start: int, counts: Counts) -> None:
        """``counts`` were merged into the bucket at ``start``."""
        for (s, e), total in self._kept.items():
            if s <= start < e:
                total.merge(counts, with_replies=False)

    def forget_before(self, start: int) -> None:
        """Buckets before ``start`` are being dropped: sums that hold any are let go."""
        for window in [w for w in self._kept if w[0] < start]:
            del self._kept[window]
