"""Offset bookkeeping that makes merging partials idempotent.

A partial carries, per source partition of the input topic, the range of offsets whose
events it counts. The aggregator remembers, per key and source partition, the highest
offset merged; a partial whose ranges all end at or below it was merged before (it was
re-sent after a crash before the input offsets were committed) and is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping

#: ``{source_partition: (first_offset, last_offset)}``, JSON-friendly as ``{"3": [10, 42]}``.
Sources = dict[int, tuple[int, int]]


class OffsetRanges:
    """Accumulates the offset range per source partition of one batch."""

    __slots__ = ("_ranges",)

    def __init__(self) -> None:
        self._ranges: Sources = {}

    def add(self, partition: int, offset: int) -> None:
        current = self._ranges.get(partition)
        if current is None:
            self._ranges[partition] = (offset, offset)
        else:
            self._ranges[partition] = (min(current[0], offset), max(current[1], offset))

    def to_json(self) -> dict[str, list[int]]:
        return {str(p): [first, last] for p, (first, last) in self._ranges.items()}


def sources_from_json(data: Mapping[str, list[int]]) -> Sources:
    return {int(p): (int(r[0]), int(r[1])) for p, r in data.items()}


def already_merged(sources: Sources, merged: Mapping[str, int]) -> bool:
    """True when every range of the partial ends at or below what was merged for the key."""
    return all(last <= merged.get(str(p), -1) for p, (_, last) in sources.items())


def advance(sources: Sources, merged: Mapping[str, int]) -> dict[str, int]:
    """The merged-offset record after merging a partial with ``sources``."""
    out = dict(merged)
    for partition, (_, last) in sources.items():
        key = str(partition)
        out[key] = max(out.get(key, -1), last)
    return out
