"""Buckets no count can reach any more, packed: what a day-long window's history costs.

A bucket behind both the late cut-off and the evidence period (``KeyBuckets.advance``) never
changes again, and the rules read it rarely: when it leaves a sliding window sum
(``aggregation.windows``), when a sum is built anew (after a restart or a long sleep), and
when it is pruned. As a ``Counts`` object with its dicts it costs about 580 bytes; a day of
one-minute buckets for 1,000 keys is then close to a gigabyte. Here such buckets are kept
as a few dozen bytes each, consecutive ones of a key in one ``bytearray``, and decoded when
read.

A packed bucket is the ``Counts`` fields in slot order, as unsigned integers: an int field
as itself, a ``dict[str, int]`` field as its length and then (name, count) pairs, the
name an index into the run's table of names (categories and complaint sources repeat from
one bucket to the next). The integers are stored as 16-bit ones when all fit, else 32-bit.
Counts a packing cannot hold exactly (reply samples, a negative or a 32-bit overflowing
count) are refused, and the caller keeps that bucket unpacked.

``BucketMap`` is what ``KeyBuckets.buckets`` is: a mapping of bucket start to counts over
the open buckets (objects) and the packed ones (a ``FrozenRun``).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping, MutableMapping
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aggregation.buckets import Counts

_WIDE = 0xFFFF
_LIMIT = 0xFFFFFFFF
#: Empty slots a run pads with to reach a new bucket; a longer gap is kept unpacked. Pruning
#: keeps a run within the kept history, so real gaps are far shorter.
MAX_GAP = 1 << 16


@cache
def _layout() -> tuple[tuple[str, bool], ...]:
    """(field, whether it is an int) of ``Counts``, in slot order."""
    from aggregation.buckets import Counts

    empty = Counts()
    return tuple((name, isinstance(getattr(empty, name), int)) for name in Counts.__slots__)


class FrozenRun:
    """Consecutive buckets of one key, oldest first, packed (module notes).

    Slot ``i`` is the bucket starting at ``base + i * size``; an empty slot is a bucket
    that does not exist. Buckets join at the new end only and leave from the old end.
    """

    __slots__ = ("_base", "_count", "_data", "_ends", "_first", "_index", "_names", "_size")

    def __init__(self, size: int) -> None:
        self._size = size
        self._reset()

    def _reset(self) -> None:
        self._base = 0
        self._data = bytearray()
        #: Where each slot's bytes end in ``_data`` (a slot starts where the previous ends).
        self._ends = array("I")
        #: Slots before this one are gone; their bytes await compaction.
        self._first = 0
        self._count = 0
        self._names: list[str] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return self._count

    def next_start(self) -> int | None:
        """Where the next bucket may start at the earliest (None: anywhere)."""
        if self._first == len(self._ends):
            return None
        return self._base + len(self._ends) * self._size

    def append(self, start: int, counts: Counts) -> bool:
        """Pack ``counts`` as the bucket at ``start``, later than every packed one; False
        (and nothing packed) if it cannot be packed exactly."""
        after = self.next_start()
        if after is None:
            self._reset()
            self._base = start
            after = start
        gap = (start - after) // self._size
        if start < after or (start - after) % self._size or gap > MAX_GAP:
            return False
        packed = self._pack(counts)
        if packed is None:
            return False
        ends = self._ends
        end = len(self._data)
        for _ in range(gap):
            ends.append(end)
        self._data += packed
        ends.append(len(self._data))
        self._count += 1
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
        if top > _LIMIT:
            return None
        kind = "H" if top <= _WIDE else "I"
        return kind.encode() + array(kind, values).tobytes()

    def _slot(self, start: int) -> int | None:
        """The index of the slot holding a bucket at ``start``, if one does."""
        offset = start - self._base
        if offset % self._size:
            return None
        i = offset // self._size
        if not self._first <= i < len(self._ends):
            return None
        if self._ends[i] == (self._ends[i - 1] if i else 0):
            return None
        return i

    def __contains__(self, start: int) -> bool:
        return self._slot(start) is not None

    def get(self, start: int) -> Counts | None:
        i = self._slot(start)
        return None if i is None else self._unpack(i)

    def _unpack(self, i: int) -> Counts:
        from aggregation.buckets import Counts

        lo = self._ends[i - 1] if i else 0
        raw = self._data[lo : self._ends[i]]
        values = array(chr(raw[0]))
        values.frombytes(raw[1:])
        names = self._names
        counts = Counts()
        at = 0
        for name, is_int in _layout():
            if is_int:
                setattr(counts, name, values[at])
                at += 1
                continue
            length = values[at]
            at += 1
            found: dict[str, int] = {}
            for _ in range(length):
                found[names[values[at]]] = values[at + 1]
                at += 2
            setattr(counts, name, found)
        return counts

    def __iter__(self) -> Iterator[int]:
        """The starts of the packed buckets, oldest first."""
        for _, start in self._slots():
            yield start

    def _slots(self) -> Iterator[tuple[int, int]]:
        """(slot index, bucket start) of the packed buckets, oldest first."""
        ends = self._ends
        previous = ends[self._first - 1] if self._first else 0
        for i in range(self._first, len(ends)):
            if ends[i] != previous:
                yield i, self._base + i * self._size
            previous = ends[i]

    def drop_ending_by(self, t: int) -> dict[int, Counts]:
        """Remove the buckets ending at or before ``t``; return them."""
        dropped: dict[int, Counts] = {}
        ends, size = self._ends, self._size
        while self._first < len(ends) and self._base + (self._first + 1) * size <= t:
            i = self._first
            if ends[i] != (ends[i - 1] if i else 0):
                dropped[self._base + i * size] = self._unpack(i)
                self._count -= 1
            self._first += 1
        if self._first == len(ends):
            self._reset()
        elif self._first * 2 > len(ends):
            self._compact()
        return dropped

    def _compact(self) -> None:
        """Let go of the bytes and slots of the buckets gone (amortized: at most as often as
        half the slots have left)."""
        first = self._first
        cut = self._ends[first - 1]
        del self._data[:cut]
        self._ends = array("I", (end - cut for end in self._ends[first:]))
        self._base += first * self._size
        self._first = 0

    def remove(self, start: int) -> Counts | None:
        """Take out the bucket at ``start``, wherever it is (an arbitrary removal repacks the
        buckets after it; pruning from the old end does not)."""
        i = self._slot(start)
        if i is None:
            return None
        if i == self._first:
            return self.drop_ending_by(start + self._size)[start]
        later = [(s, self._unpack(j)) for j, s in self._slots() if j > i]
        removed = self._unpack(i)
        lo = self._ends[i - 1] if i else 0
        del self._data[lo:]
        del self._ends[i:]
        self._count -= 1 + len(later)
        if self._first == len(self._ends):
            self._reset()
        for s, counts in later:
            self.append(s, counts)
        return removed


class BucketMap(MutableMapping[int, "Counts"]):
    """A key's buckets by start: the open ones as ``Counts`` objects, the done ones packed
    (module notes). A packed bucket is read as a fresh copy; it is never written again."""

    __slots__ = ("_frozen", "_open", "_size")

    def __init__(self, size: int, buckets: Mapping[int, Counts] | None = None) -> None:
        self._size = size
        self._open: dict[int, Counts] = dict(buckets or {})
        self._frozen = FrozenRun(size)

    def get(self, start: int, default: Counts | None = None) -> Counts | None:  # type: ignore[override]
        counts = self._open.get(start)
        if counts is None and len(self._frozen):
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

    def drop_ending_by(self, t: int) -> dict[int, Counts]:
        """Remove the buckets ending at or before ``t``; return them."""
        size = self._size
        dropped = self._frozen.drop_ending_by(t)
        for start in [s for s in self._open if s + size <= t]:
            dropped[start] = self._open.pop(start)
        return dropped

    def freeze_ending_by(self, t: int) -> None:
        """The buckets ending at or before ``t`` take no more counts and need no reply
        samples: strip them, and pack those that can be (oldest first)."""
        size, frozen = self._size, self._frozen
        for start in sorted(s for s in self._open if s + size <= t):
            counts = self._open[start]
            counts.replies = {}
            after = frozen.next_start()
            if (after is None or start >= after) and frozen.append(start, counts):
                del self._open[start]
