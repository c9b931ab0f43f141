"""Buckets no count can reach any more, packed: what a day-long window's history costs.

A bucket behind both the late cut-off and the evidence period (``KeyBuckets.advance``) never
changes again, and the rules read it rarely: when it leaves a sliding window sum
(``aggregation.windows``), when a sum is built anew (after a restart or a long sleep), and
when it is pruned. As a ``Counts`` object with its dicts it costs about 580 bytes; a day of
one-minute buckets for 1,000 keys is then close to a gigabyte. Here such buckets are kept
as a few dozen bytes each, all of a key's in one ``bytearray`` in start order, and decoded
when read.

A packed bucket is the ``Counts`` fields in slot order, as unsigned integers: an int field
as itself, a ``dict[str, int]`` field as its length and then (name, count) pairs, the
name an index into the run's table of names (categories and complaint sources repeat from
one bucket to the next). A bucket's integers are stored 8, 16 or 32 bits wide, the narrowest
that holds them all. Counts a packing cannot hold exactly (reply samples, a negative count,
one past 32 bits) are refused, and the caller keeps that bucket unpacked.

``BucketMap`` is what ``KeyBuckets.buckets`` is: a mapping of bucket start to counts over
the open buckets (objects) and the packed ones (a ``FrozenRun``).
"""

from __future__ import annotations

import bisect
import heapq
import struct
from array import array
from collections.abc import Iterator, MutableMapping
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aggregation.buckets import Counts

#: A key packs its done buckets once it holds more than this many: a sparse key costs little
#: memory as it is, and its windows, summed anew after each of its long sleeps, would read
#: (decode) its few buckets again and again.
PACK_FROM = 32
#: Bytes per integer of each ``struct`` format, narrowest first.
_WIDTHS = {"B": 1, "H": 2, "I": 4}


@cache
def _layout() -> tuple[tuple[str, bool], ...]:
    """(field, whether it is an int) of ``Counts``, in slot (and ``__init__``) order."""
    from aggregation.buckets import Counts

    empty = Counts()
    return tuple((name, isinstance(getattr(empty, name), int)) for name in Counts.__slots__)


class FrozenRun:
    """Buckets of one key, oldest first, packed (module notes).

    Packed bucket ``i`` starts at ``_starts[i]``; its bytes end at ``_ends[i]`` in ``_data``
    and begin where bucket ``i - 1``'s end. Buckets join at the new end only and leave from
    the old end, so both arrays stay sorted and a bucket is found by bisection.
    """

    __slots__ = ("_data", "_ends", "_first", "_index", "_names", "_starts")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._data = bytearray()
        self._starts = array("q")
        self._ends = array("I")
        #: Buckets before this index are gone; their bytes await compaction.
        self._first = 0
        self._names: list[str] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._starts) - self._first

    def first(self) -> int | None:
        """The start of the oldest packed bucket (None: none is)."""
        return self._starts[self._first] if self._first < len(self._starts) else None

    def last_start(self) -> int | None:
        """The start of the newest packed bucket (None: none is)."""
        return self._starts[-1] if len(self) else None

    def append(self, start: int, counts: Counts) -> bool:
        """Pack ``counts`` as the bucket at ``start``, later than every packed one; False
        (and nothing packed) if it cannot be packed exactly."""
        last = self.last_start()
        if last is None:
            self._reset()  # empty: let go of the names too
        elif start <= last:
            return False
        packed = self._pack(counts)
        if packed is None:
            return False
        self._data += packed
        self._starts.append(start)
        self._ends.append(len(self._data))
        return True

    def _pack(self, counts: Counts) -> bytes | None:
        values: list[int] = []
        index = self._index
        for name, is_int in _layout():
            value = getattr(counts, name)
            if is_int:
                values.append(value)
                continue
            values.append(len(value))
            for key, n in value.items():
                if not isinstance(n, int):
                    return None  # reply samples: never in a bucket old enough to pack
                code = index.get(key)
                if code is None:
                    code = index[key] = len(self._names)
                    self._names.append(key)
                values.append(code)
                values.append(n)
        if min(values) < 0:
            return None
        top = max(values)
        kind = next((k for k, width in _WIDTHS.items() if top < 1 << 8 * width), None)
        if kind is None:
            return None  # a count past 32 bits
        return kind.encode() + struct.pack(f"<{len(values)}{kind}", *values)

    def _at(self, start: int) -> int | None:
        """The index of the packed bucket starting at ``start``, if there is one."""
        i = bisect.bisect_left(self._starts, start, self._first)
        return i if i < len(self._starts) and self._starts[i] == start else None

    def __contains__(self, start: int) -> bool:
        return self._at(start) is not None

    def get(self, start: int) -> Counts | None:
        i = self._at(start)
        return None if i is None else self._unpack(i)

    def _unpack(self, i: int) -> Counts:
        from aggregation.buckets import Counts

        data = self._data
        lo = self._ends[i - 1] if i else 0
        kind = chr(data[lo])
        count = (self._ends[i] - lo - 1) // _WIDTHS[kind]
        values = struct.unpack_from(f"<{count}{kind}", data, lo + 1)
        names = self._names
        fields: list[Any] = []
        at = 0
        for _, is_int in _layout():
            if is_int:
                fields.append(values[at])
                at += 1
                continue
            end = at + 1 + 2 * values[at]
            fields.append({names[values[j]]: values[j + 1] for j in range(at + 1, end, 2)})
            at = end
        return Counts(*fields)

    def __iter__(self) -> Iterator[int]:
        """The starts of the packed buckets, oldest first."""
        return iter(self._starts[self._first :])

    def between(self, start: int, end: int) -> Iterator[tuple[int, Counts]]:
        """(start, counts) of the packed buckets starting in ``[start, end)``."""
        starts = self._starts
        lo = bisect.bisect_left(starts, start, self._first)
        hi = bisect.bisect_left(starts, end, lo)
        for i in range(lo, hi):
            yield starts[i], self._unpack(i)

    def first_from(self, since: int) -> int | None:
        """The start of the earliest packed bucket starting at or after ``since``."""
        i = bisect.bisect_left(self._starts, since, self._first)
        return self._starts[i] if i < len(self._starts) else None

    def ending_by(self, t: int, size: int) -> dict[int, Counts]:
        """The packed buckets of ``size`` seconds ending at or before ``t``, read (what
        ``drop_ending_by`` drops)."""
        return dict(self.between(self._starts[self._first] if len(self) else t, t - size + 1))

    def drop_ending_by(self, t: int, size: int) -> list[int]:
        """Remove the buckets of ``size`` seconds ending at or before ``t``; their starts."""
        starts = self._starts
        hi = bisect.bisect_right(starts, t - size, self._first)
        if hi == self._first:
            return []
        dropped = starts[self._first : hi].tolist()
        self._first = hi
        if hi == len(starts):
            self._reset()
        elif hi * 2 > len(starts):
            self._compact()
        return dropped

    def _compact(self) -> None:
        """Let go of the bytes and slots of the buckets gone (amortized: at most as often as
        half the buckets have left)."""
        first = self._first
        cut = self._ends[first - 1]
        del self._data[:cut]
        self._ends = array("I", (end - cut for end in self._ends[first:]))
        self._starts = self._starts[first:]
        self._first = 0

    def remove(self, start: int) -> Counts | None:
        """Take out the bucket at ``start``, wherever it is (an arbitrary removal repacks the
        buckets after it; pruning from the old end does not)."""
        i = self._at(start)
        if i is None:
            return None
        removed = self._unpack(i)
        later = [(self._starts[j], self._unpack(j)) for j in range(i + 1, len(self._starts))]
        lo = self._ends[i - 1] if i else 0
        del self._data[lo:]
        del self._starts[i:]
        del self._ends[i:]
        if not len(self):
            self._reset()
        for s, counts in later:
            self.append(s, counts)
        return removed


class BucketMap(MutableMapping[int, "Counts"]):
    """A key's buckets by start: the open ones as ``Counts`` objects, the done ones packed
    (module notes). A packed bucket is read as a fresh copy; it is never written again.

    The open buckets' starts wait in a heap, so that a step of the watermark finds the ones
    it passes without scanning the key's open hour (``advance`` runs at every boundary).
    """

    __slots__ = ("_frozen", "_open", "_pack_from", "_queue", "_size", "_unpacked")

    def __init__(self, size: int, pack_from: int = PACK_FROM) -> None:
        self._size = size
        self._pack_from = pack_from
        self._open: dict[int, Counts] = {}
        #: Starts of open buckets, a heap; a start no longer open is skipped when it comes up.
        self._queue: list[int] = []
        #: Open buckets past the packing line left unpacked (a sparse key's, or counts that
        #: cannot be packed exactly), in start order.
        self._unpacked: list[int] = []
        self._frozen = FrozenRun()

    def get(self, start: int, default: Counts | None = None) -> Counts | None:  # type: ignore[override]
        counts = self._open.get(start)
        if counts is not None:
            return counts
        counts = self._frozen.get(start)
        return default if counts is None else counts

    def __getitem__(self, start: int) -> Counts:
        counts = self.get(start)
        if counts is None:
            raise KeyError(start)
        return counts

    def __setitem__(self, start: int, counts: Counts) -> None:
        if start in self._frozen:
            raise ValueError(f"the bucket at {start} is packed: it takes no more counts")
        if start not in self._open:
            heapq.heappush(self._queue, start)
        self._open[start] = counts

    def __delitem__(self, start: int) -> None:
        if self._open.pop(start, None) is None and self._frozen.remove(start) is None:
            raise KeyError(start)

    def __contains__(self, start: object) -> bool:
        return start in self._open or (isinstance(start, int) and start in self._frozen)

    def __iter__(self) -> Iterator[int]:
        yield from self._frozen
        yield from self._open

    def __len__(self) -> int:
        return len(self._open) + len(self._frozen)

    @property
    def packed(self) -> int:
        """How many buckets are packed."""
        return len(self._frozen)

    def between(self, start: int, end: int) -> Iterator[tuple[int, Counts]]:
        """(start, counts) of the buckets starting in ``[start, end)``, packed ones read only
        there (not every bucket of the key, as ``items()`` would)."""
        yield from self._frozen.between(start, end)
        for s, counts in self._open.items():
            if start <= s < end:
                yield s, counts

    def first_from(self, since: int) -> int | None:
        """The start of the earliest bucket starting at or after ``since``."""
        starts = [s for s in self._open if s >= since]
        packed = self._frozen.first_from(since)
        if packed is not None:
            starts.append(packed)
        return min(starts, default=None)

    def oldest(self) -> int | None:
        """At most the start of the oldest bucket (None: there is none); cheap."""
        oldest = self._frozen.first()
        for heads in (self._unpacked, self._queue):  # a queued start may be gone: no matter
            if heads and (oldest is None or heads[0] < oldest):
                oldest = heads[0]
        return oldest

    def ending_by(self, t: int) -> dict[int, Counts]:
        """The buckets ending at or before ``t`` (what ``drop_ending_by`` would drop)."""
        size = self._size
        found = self._frozen.ending_by(t, size)
        if (self._queue and self._queue[0] + size <= t) or (
            self._unpacked and self._unpacked[0] + size <= t
        ):
            found.update((s, c) for s, c in self._open.items() if s + size <= t)
        return found

    def drop_ending_by(self, t: int) -> list[int]:
        """Remove the buckets ending at or before ``t``; return their starts."""
        size, opened, queue, unpacked = self._size, self._open, self._queue, self._unpacked
        dropped = self._frozen.drop_ending_by(t, size)
        while unpacked and unpacked[0] + size <= t:
            start = unpacked.pop(0)
            if opened.pop(start, None) is not None:
                dropped.append(start)
        while queue and queue[0] + size <= t:
            start = heapq.heappop(queue)
            if opened.pop(start, None) is not None:
                dropped.append(start)
        return dropped

    def freeze_ending_by(self, t: int) -> None:
        """The buckets ending at or before ``t`` take no more counts and need no reply
        samples: strip them, and pack those that can be (oldest first)."""
        size, frozen, opened, queue = self._size, self._frozen, self._open, self._queue
        if self._unpacked and not len(frozen) and len(self) > self._pack_from:
            # The key has grown dense: pack what it left unpacked while sparse (oldest first).
            for start in list(self._unpacked):
                if frozen.append(start, opened[start]):
                    del opened[start]
                    self._unpacked.remove(start)
        while queue and queue[0] + size <= t:
            start = heapq.heappop(queue)
            counts = opened.get(start)
            if counts is None:
                continue  # gone already
            counts.replies = {}
            if len(self) > self._pack_from and frozen.append(start, counts):
                del opened[start]
            else:
                bisect.insort(self._unpacked, start)
