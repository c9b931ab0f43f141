"""The aggregate side of the core: merge partials into per-key buckets, evaluate the rules.

``Aggregator`` works over two mappings (Faust tables in the worker, dicts in tests): the
bucket entries of every key and the alert state of every key. The Faust agent in
``streams.topology`` only feeds it partials, progress records and ticks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, MutableMapping
from typing import Any

from aggregation.buckets import (
    KeyBuckets,
    Partial,
)
from aggregation.ingest import Engine
from aggregation.watermark import Progress
from alerts.catchup import KeyState, evaluate_through
from schemas.alert import AlertTransition

#: Table entries per aggregation key: one per bucket, and one of metadata.
META = "meta"


def entry(key: str, part: int | str) -> str:
    """The table key of one bucket (``part`` its start) or of a key's metadata."""
    return f"{key}@{part}"


class Aggregator:
    """The aggregate agent's logic over two mappings (Faust tables in the worker).

    ``buckets`` holds, per aggregation key, one entry per bucket (``key@<start>``: its
    counts) and one of metadata (``key@meta``: offsets merged, watermark, the bucket starts
    and the partials partition). A merge rewrites only the buckets the partial touched, so
    the changelog carries small records, not the key's whole history each time. ``states``
    maps aggregation key to ``KeyState.to_dict()``. Both are read once per key into live
    objects, which ``reindex`` drops after a rebalance. Every method returns the alert
    transitions to publish, in order.
    """

    def __init__(
        self,
        engine: Engine,
        buckets: MutableMapping[str, dict[str, Any] | None],
        states: MutableMapping[str, dict[str, Any] | None],
    ) -> None:
        self.engine = engine
        self.buckets = buckets
        self.states = states
        self.progress = Progress()
        self.keys_by_partition: dict[int, set[str]] = defaultdict(set)
        self._live: dict[str, KeyBuckets] = {}
        self._live_states: dict[str, KeyState] = {}
        self._stored: dict[str, set[int]] = {}
        #: (rule, severity) of each firing alert, by aggregation key: what the firing gauge
        #: shows, kept as states are written so that a scrape need not read every state.
        self.firing: dict[str, list[tuple[str, str]]] = {}
        self.duplicates = 0
        self.evaluations = 0

    def reindex(self) -> None:
        """Forget the live objects and index the keys ``buckets`` holds now (a rebalance)."""
        self.keys_by_partition.clear()
        self._live.clear()
        self._live_states.clear()
        self._stored.clear()
        self.firing.clear()
        for key, value in self.states.items():
            self._note_firing(key, KeyState.from_dict(value))
        suffix = "@" + META
        for name, value in self.buckets.items():
            if value is not None and name.endswith(suffix):
                self.keys_by_partition[int(value["partition"])].add(name[: -len(suffix)])

    def load(self, key: str) -> KeyBuckets:
        kb = self._live.get(key)
        if kb is not None:
            return kb
        config = self.engine.config
        meta = self.buckets.get(entry(key, META))
        if meta:
            stored = {s: self.buckets.get(entry(key, s)) for s in meta.get("starts", ())}
            data = {**meta, "buckets": {str(s): c for s, c in stored.items() if c is not None}}
            kb = KeyBuckets.from_dict(data, config)
        else:
            kb = KeyBuckets(key, config)
        self._stored[key] = set(kb.buckets)
        self._live[key] = kb
        return kb

    def store(self, kb: KeyBuckets, partition: int, changed: Iterable[int] = ()) -> None:
        """Write the buckets in ``changed``, delete pruned ones, and write the metadata."""
        key = kb.key
        before = self._stored.get(key, set())
        now = set(kb.buckets)
        for start in before - now:
            self.buckets.pop(entry(key, start), None)
        for start in changed:
            counts = kb.buckets.get(start)
            if counts is not None:
                self.buckets[entry(key, start)] = counts.to_dict()
        meta = kb.to_dict(with_buckets=False)
        del meta["buckets"]
        meta["partition"] = partition
        meta["starts"] = sorted(now)
        self.buckets[entry(key, META)] = meta
        self._stored[key] = now
        self.keys_by_partition[partition].add(key)

    def state(self, key: str) -> KeyState:
        state = self._live_states.get(key)
        if state is None:
            state = self._live_states[key] = KeyState.from_dict(self.states.get(key))
        return state

    def watermark(self, partition: int) -> int | None:
        event_time = self.progress.event_time(partition)
        return None if event_time is None else self.engine.config.watermark_for(event_time)

    def catch_up(self, kb: KeyBuckets, partition: int) -> list[AlertTransition] | None:
        """Evaluate ``kb`` at every boundary its partition's progress has passed.

        Returns None when there was nothing to evaluate. Runs on ticks for every key, and
        before each merge for the key merged into, so that evaluation never falls behind
        merging: a backlog merged first would prune buckets that boundaries not evaluated
        yet still read.
        """
        wm = self.watermark(partition)
        if wm is None:
            return None
        state = self.state(kb.key)
        if state.next_eval is not None and state.next_eval > wm:
            return None
        before = state.next_eval
        transitions = evaluate_through(self.engine.evaluator, kb, state, wm)
        if state.next_eval == before:
            return None
        self.evaluations += 1
        self.states[kb.key] = state.to_dict()
        self._note_firing(kb.key, state)
        return transitions

    def _note_firing(self, key: str, state: KeyState) -> None:
        active = [(r.rule, str(r.severity or "")) for r in state.active()]
        if active:
            self.firing[key] = active
        else:
            self.firing.pop(key, None)

    def firing_counts(self) -> dict[tuple[str, str], int]:
        """Firing alerts by (rule, severity)."""
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for active in self.firing.values():
            for labels in active:
                counts[labels] += 1
        return dict(counts)

    def merge(self, partition: int, partial: Partial) -> tuple[list[AlertTransition], int]:
        """Merge one partial; returns the transitions of the catch-up first, and the late
        attempts (older than the allowed lateness, counted nowhere else)."""
        kb = self.load(partial.key)
        transitions = self.catch_up(kb, partition) or []
        duplicates = kb.duplicates
        late = kb.merge(partial, self.watermark(partition))
        merged = kb.duplicates == duplicates
        self.duplicates += kb.duplicates - duplicates
        self.store(kb, partition, partial.buckets if merged else ())
        return transitions, late

    def tick(self, partition: int) -> list[AlertTransition]:
        transitions: list[AlertTransition] = []
        for key in sorted(self.keys_by_partition.get(partition, ())):
            kb = self.load(key)
            found = self.catch_up(kb, partition)
            if found is not None:
                transitions.extend(found)
                self.store(kb, partition)
        return transitions

    def aggregation_keys(self) -> list[str]:
        """Every aggregation key this worker holds."""
        return sorted(k for keys in self.keys_by_partition.values() for k in keys)
