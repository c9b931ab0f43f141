"""Evaluating one aggregation key at every closed bucket boundary, live and offline alike.

``evaluate_through`` is the one loop that turns a key's buckets and alert records into
transitions, used by the worker's aggregator and by ``replay``. Boundaries are evaluated in
order, so a worker that was down or slow catches up with the same transitions. A stretch of
event time in which the key has no data and no alert pending or firing is jumped over in one
step: every evaluation there would see empty windows and change nothing, so an event with a
wrong clock, or a key quiet for a week, costs what one bucket costs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aggregation.buckets import KeyBuckets, align_down
from alerts.evaluate import Evaluator
from alerts.state import AlertStateRecord
from schemas.alert import AlertState, AlertTransition

#: Alert states in which an empty window still changes something (resolves, reminds).
_ACTIVE = (AlertState.PENDING, AlertState.FIRING)


@dataclass
class KeyState:
    """The alert side of one aggregation key: its alert records and evaluation progress."""

    records: dict[str, AlertStateRecord] = field(default_factory=dict)
    #: The next bucket boundary to evaluate; every boundary before it has been evaluated.
    next_eval: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": {fp: r.to_dict() for fp, r in self.records.items()},
            "next_eval": self.next_eval,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> KeyState:
        if not data:
            return cls()
        return cls(
            records={
                fp: AlertStateRecord.from_dict(r) for fp, r in data.get("records", {}).items()
            },
            next_eval=data.get("next_eval"),
        )

    def active(self) -> list[AlertStateRecord]:
        return [r for r in self.records.values() if r.state is AlertState.FIRING]


def _quiet(records: Mapping[str, AlertStateRecord]) -> bool:
    return all(r.state not in _ACTIVE for r in records.values())


def _skip_to(kb: KeyBuckets, boundary: int, last: int) -> int:
    """The next boundary worth evaluating from ``boundary`` on, for a quiet key.

    Windows ending at ``boundary`` read buckets in ``[boundary - retention, boundary)``; when
    none is there, they stay empty up to the boundary at the next bucket's start, so the
    first one to evaluate is the one after it (or the one after ``last`` if no bucket comes).
    """
    size = kb.config.bucket_seconds
    if boundary - size in kb.buckets:
        return boundary  # the common case while traffic flows: one dict lookup
    lookback = boundary - kb.config.retention_seconds
    later: int | None = None
    for start in kb.buckets:
        if start >= boundary:
            if later is None or start < later:
                later = start
        elif start >= lookback:
            return boundary
    target = last + size if later is None else later + size
    return max(boundary, min(target, last + size))


def evaluate_through(
    evaluator: Evaluator, kb: KeyBuckets, state: KeyState, watermark: int
) -> list[AlertTransition]:
    """Evaluate ``kb`` at every bucket boundary up to ``watermark`` not evaluated yet.

    Evaluating again up to the same watermark yields nothing: ``state.next_eval`` has moved
    past it. Stretches without data are jumped over (module notes).
    """
    size = kb.config.bucket_seconds
    boundary = state.next_eval
    if boundary is None:
        if not kb.buckets:
            return []
        # Before a key's first bucket every window is empty: nothing to evaluate there.
        boundary = min(kb.buckets) + size
    last = align_down(watermark, size)
    transitions: list[AlertTransition] = []
    while boundary <= watermark:
        kb.advance(boundary)
        found, records = evaluator.evaluate(kb, state.records, boundary)
        state.records = records
        transitions.extend(found)
        boundary += size
        if found or boundary > watermark or not _quiet(records):
            continue
        skipped = _skip_to(kb, boundary, last)
        if skipped > boundary:
            boundary = skipped
            kb.advance(boundary - size)  # as evaluating the skipped boundaries would have
    state.next_eval = boundary
    return transitions
