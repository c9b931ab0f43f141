"""Evaluating one aggregation key at every closed bucket boundary, live and offline alike.

``evaluate_through`` is the one loop that turns a key's buckets and alert records into
transitions, used by the worker's aggregator and by ``replay``. Boundaries are evaluated in
order, so a worker that was down or slow catches up with the same transitions. A stretch
in which a key has no alert pending or firing and every rule's window is below its
volume guard is slept through (``Sleep``) until counts come: every evaluation there would
find nothing active and change nothing. So an event with a wrong clock, or a key quiet for a
week, costs what one bucket costs, and the many small keys of a month's replay cost their
traffic, not their number times the month's minutes.
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
    #: Set while the key sleeps (``Sleep``); not stored: a restarted key evaluates once and
    #: falls asleep again.
    sleep: Sleep | None = field(default=None, compare=False)

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


@dataclass(slots=True)
class Sleep:
    """A quiet key whose every rule was below its volume guard at the boundary ``since`` it
    fell asleep at (``start``): what wakes it.

    A window's volume only grows with counts in it, and a window ending after ``since``
    holds the buckets of the one ending at ``since`` that it still covers, plus buckets from
    ``since`` on. So until a bucket at or after ``since`` has counts (``ahead``: the first
    there when the key fell asleep) or counts are merged anywhere (``KeyBuckets.touched``),
    every boundary would find every rule below its guard, hence nothing active: the
    verdicts are known without evaluating. A key sleeps through such a stretch and wakes at
    the first boundary whose windows can hold the new counts.
    """

    #: The first bucket at or after ``since`` that held counts when the key fell asleep.
    ahead: int | None
    #: When to prune the key's buckets: a long sleep must not keep them.
    prune_at: int

    @classmethod
    def start(cls, kb: KeyBuckets, since: int) -> Sleep:
        kb.touched = None
        return cls(kb.buckets.first_from(since), since + _kept_for(kb))

    def wake(self, kb: KeyBuckets) -> int | None:
        """The first boundary to evaluate again (``None``: none until counts come)."""
        size = kb.config.bucket_seconds
        starts = [s for s in (self.ahead, kb.touched) if s is not None]
        return min(starts) + size if starts else None

    def due(self, kb: KeyBuckets) -> int:
        """The watermark before which evaluating the key again would only sleep on: its
        wake, or its pruning (a driver holding many keys calls only those due)."""
        wake = self.wake(kb)
        prune = self.prune_at + kb.config.bucket_seconds
        return prune if wake is None else min(wake, prune)


def _kept_for(kb: KeyBuckets) -> int:
    """How long a key asleep waits before advancing drops something: by then every bucket
    it held when it fell asleep is behind what ``KeyBuckets.advance`` keeps."""
    return kb.config.kept_seconds + kb.config.bucket_seconds


def evaluate_through(
    evaluator: Evaluator, kb: KeyBuckets, state: KeyState, watermark: int
) -> list[AlertTransition]:
    """Evaluate ``kb`` at every bucket boundary up to ``watermark`` not evaluated yet.

    Evaluating again up to the same watermark yields nothing: ``state.next_eval`` has moved
    past it. A key whose rules all sit below their volume guard sleeps until counts come
    (``Sleep``): most keys most of the time, and stretches with no data at all.
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
        sleep = state.sleep
        if sleep is not None:
            wake = sleep.wake(kb)
            if wake is None or wake > boundary:
                boundary = last + size if wake is None else min(wake, last + size)
                if boundary - size >= sleep.prune_at:
                    kb.advance(boundary - size)  # as evaluating up to there would have
                    sleep.prune_at = boundary - size + _kept_for(kb)
                else:
                    kb.judged_through(boundary - size)
                continue
            state.sleep = None
        kb.advance(boundary)
        evaluation = evaluator.evaluate_at(kb, state.records, boundary)
        state.records = evaluation.records
        transitions.extend(evaluation.transitions)
        if evaluation.below_guard and not evaluation.transitions and _quiet(state.records):
            state.sleep = Sleep.start(kb, boundary)
        boundary += size
    state.next_eval = boundary
    return transitions
