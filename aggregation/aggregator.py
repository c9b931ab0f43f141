"""The aggregate side of the core: merge partials into per-key buckets, evaluate the rules.

``Aggregator`` works over two mappings (Faust tables in the worker, dicts in tests): the
bucket entries of every key and the alert state of every key. The Faust agent in
``streams.topology`` only feeds it partials, progress records and ticks.

A state written before the transitions it made are published could outlive them: a worker
killed in between recovers a state that has fired, and nothing publishes the firing again
(its input is read again, but evaluates to no change). With ``hold_states`` the aggregator
keeps evaluated states to itself until ``write_held``, which the agent calls once the
transitions are acknowledged: a crash in between evaluates them again and publishes them
twice at worst, which the notifier's log absorbs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, MutableMapping
from typing import Any

from aggregation.buckets import Counts, KeyBuckets, Partial, align_down
from aggregation.ingest import Engine
from aggregation.watermark import Progress
from alerts.catchup import KeyState, evaluate_through
from schemas.alert import AlertTransition

#: Below every watermark: a partition never judged.
_NEVER = -(1 << 62)


def entry(key: str, start: int) -> str:
    """The table key of one bucket of ``key`` (``start`` its start)."""
    return f"{key}@{start}"


def parse_entry(name: str) -> tuple[str, int] | None:
    """(aggregation key, bucket start) of a table key made by ``entry``."""
    key, sep, start = name.rpartition("@")
    if not sep or not start.lstrip("-").isdigit():
        return None  # an entry of an older layout (``key@meta``): nothing to read
    return key, int(start)


class Aggregator:
    """The aggregate agent's logic over two mappings (Faust tables in the worker).

    ``buckets`` holds one entry per aggregation key and bucket (``key@<start>``): the
    bucket's counts, the partials partition, and the key's merged input offsets as of the
    merge that wrote it. A merge writes the buckets the partial touched and nothing else, so
    a key's cost per merge does not grow with the window its rules read (a 24-hour window
    costs what a 1-hour one does); the key's offsets are the newest over its entries, and its
    evaluated-through time is its alert state's. ``states`` maps aggregation key to
    ``KeyState.to_dict()``. Both are read once per key into live objects, which ``reindex``
    drops after a rebalance. Every method returns the alert transitions to publish, in order.
    """

    def __init__(
        self,
        engine: Engine,
        buckets: MutableMapping[str, dict[str, Any] | None],
        states: MutableMapping[str, dict[str, Any] | None],
        hold_states: bool = False,
    ) -> None:
        self.engine = engine
        self.buckets = buckets
        self.states = states
        #: Keep evaluated states from ``states`` until ``write_held`` (module notes).
        self.hold_states = hold_states
        self._held: dict[str, KeyState] = {}
        self.progress = Progress()
        #: The ingest's progress records as the recipients stage passes them on, once it has
        #: counted the suppressions decided before them (list hygiene on): new suppressions
        #: come by that way, after the partials of the events that decided them.
        self.hygiene_progress = Progress()
        self.keys_by_partition: dict[int, set[str]] = defaultdict(set)
        #: The watermark each partition's keys were last all evaluated through (``tick``).
        self._judged: dict[int, int] = {}
        self._live: dict[str, KeyBuckets] = {}
        self._live_states: dict[str, KeyState] = {}
        #: Bucket starts stored per key not loaded yet (the table's index, by ``reindex``); a
        #: loaded key's stored entries are its buckets, kept so by ``store``.
        self._stored: dict[str, list[int]] = defaultdict(list)
        #: (rule, severity) of each firing alert, by aggregation key: what the firing gauge
        #: shows, kept as states are written so that a scrape need not read every state.
        self.firing: dict[str, list[tuple[str, str]]] = {}
        self.duplicates = 0
        #: Partials merged again in part, their first merge's writes having been cut short.
        self.repaired = 0
        self.reopened = 0
        self.evaluations = 0

    def reindex(self) -> None:
        """Forget the live objects and index the keys ``buckets`` holds now (a rebalance), and
        the held states: evaluated again from the stored ones, they publish again."""
        self._held.clear()
        self.keys_by_partition.clear()
        self._judged.clear()
        self._live.clear()
        self._live_states.clear()
        self._stored.clear()
        self.firing.clear()
        for key, value in self.states.items():
            self._note_firing(key, KeyState.from_dict(value))
        for name, value in self.buckets.items():
            parsed = parse_entry(name)
            if value is None or parsed is None:
                continue
            key, start = parsed
            self._stored[key].append(start)
            self.keys_by_partition[int(value["p"])].add(key)

    def load(self, key: str) -> KeyBuckets:
        kb = self._live.get(key)
        if kb is not None:
            return kb
        kb = KeyBuckets(key, self.engine.config, pruned=[])
        for start in self._stored.pop(key, ()):
            value = self.buckets.get(entry(key, start))
            if value is None:
                continue
            kb.buckets[start] = Counts.from_dict(value["c"])
            for source, offset in value["o"].items():
                if offset > kb.offsets.get(source, -1):
                    kb.offsets[source] = offset
        state = self.state(key)
        if state.next_eval is not None:
            kb.watermark = state.next_eval - kb.config.bucket_seconds
        self._live[key] = kb
        return kb

    def store(self, kb: KeyBuckets, partition: int, changed: Iterable[int] = ()) -> None:
        """Write the buckets in ``changed`` and delete the pruned ones."""
        key = kb.key
        if kb.pruned:
            for start in kb.pruned:
                self.buckets.pop(entry(key, start), None)
            kb.pruned.clear()
        offsets: dict[str, int] | None = None
        for start in changed:
            counts = kb.buckets.get(start)
            if counts is not None:
                if offsets is None:
                    offsets = dict(kb.offsets)
                self.buckets[entry(key, start)] = {
                    "c": counts.to_dict(),
                    "o": offsets,
                    "p": partition,
                }
        self.keys_by_partition[partition].add(key)

    def state(self, key: str) -> KeyState:
        state = self._live_states.get(key)
        if state is None:
            state = self._live_states[key] = KeyState.from_dict(self.states.get(key))
        return state

    def watermark(self, partition: int) -> int | None:
        event_time = self.progress.event_time(partition)
        if event_time is not None and self.engine.hygiene is not None:
            # Judge no bucket before its new suppressions are in (``suppression_rate``).
            counted = self.hygiene_progress.event_time(partition)
            event_time = None if counted is None else min(event_time, counted)
        return None if event_time is None else self.engine.config.watermark_for(event_time)

    def catch_up(self, kb: KeyBuckets, wm: int | None) -> list[AlertTransition] | None:
        """Evaluate ``kb`` at every boundary up to ``wm``, its partition's watermark.

        Returns None when there was nothing to evaluate. Runs on ticks for every key, and
        before each merge for the key merged into, so that evaluation never falls behind
        merging: a backlog merged first would prune buckets that boundaries not evaluated
        yet still read.
        """
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
        if self.hold_states:
            self._held[kb.key] = state
        else:
            self.states[kb.key] = state.to_dict()
        self._note_firing(kb.key, state)
        return transitions

    def write_held(self) -> None:
        """Write the states evaluated since the last call (``hold_states``): once the
        transitions they made are published, so that a crash in between publishes them again
        rather than never (a recovered state that has fired says nothing more)."""
        held, self._held = self._held, {}
        for key, state in held.items():
            self.states[key] = state.to_dict()

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
        attempts (older than the allowed lateness, counted nowhere else).

        A partial the key's offsets already cover is read again after a restart. Its merge
        wrote one table entry per bucket, and a crash can keep the first of those writes and
        lose the rest (the changelog keeps a prefix of what was sent); the kept entries carry
        the merge's offsets, so the key looks merged. Its buckets whose entries do not carry
        them are merged again here (``repaired``): counted once, whichever writes survived.
        """
        kb = self.load(partial.key)
        wm = self.watermark(partition)
        transitions = self.catch_up(kb, wm) or []
        duplicates, reopened = kb.duplicates, kb.reopened
        late = kb.merge(partial, wm)
        merged = kb.duplicates == duplicates
        changed: Iterable[int] = partial.buckets
        if not merged:
            changed = self._repair(kb, partial)
            if changed:
                kb.duplicates -= 1
            else:
                self.duplicates += 1
        self.reopened += kb.reopened - reopened
        if self.state(kb.key).next_eval is None:
            # A key's first buckets: judged through the watermark now, like every other key
            # of the partition, which ``_judge`` relies on to skip passes.
            transitions.extend(self.catch_up(kb, wm) or [])
        self.store(kb, partition, changed)
        return transitions, late

    def _repair(self, kb: KeyBuckets, partial: Partial) -> list[int]:
        """Merge the buckets of ``partial`` (covered by the key's offsets) whose stored
        entries were written before it; returns their starts."""
        cutoff = kb.late_cutoff()
        size = kb.config.bucket_seconds
        missing: dict[int, Counts] = {}
        for start, counts in partial.buckets.items():
            if cutoff is not None and start + size <= cutoff:
                continue  # pruned since, or accepting no counts: nothing to repair
            stored = self.buckets.get(entry(kb.key, start))
            offsets = {} if stored is None else stored["o"]
            if any(r[1] > offsets.get(p, -1) for p, r in partial.sources.items()):
                missing[start] = counts
        if missing:
            self.repaired += 1
            # No offsets: the key's already cover the partial; only these counts are missing.
            kb.merge(Partial(partial.key, missing, partial.max_event_time))
        return sorted(missing)

    def tick(self, partition: int) -> list[AlertTransition]:
        """Evaluate every key of ``partition`` through its watermark: at each timer tick, and
        when a progress record arrives, so that a bucket is judged as soon as the watermark
        passes it and a backlog's last buckets with it (``_judge`` makes a call that finds
        nothing to judge cheap)."""
        wm = self.watermark(partition)
        return [] if wm is None else self._judge(partition, wm)

    def _judge(self, partition: int, wm: int) -> list[AlertTransition]:
        """Every key of ``partition`` judged through ``wm``.

        Keys are judged at bucket boundaries only, and every key of the partition has been
        judged through ``_judged`` (a merge judges its key through the watermark of the
        moment, which is no older): unless the watermark crossed a boundary since, no key
        has anything to judge, and the pass over them all is skipped. Live, the watermark
        moves every second and a boundary comes once a bucket; a partition may hold a
        hundred thousand keys.
        """
        judged = self._judged.get(partition)
        size = self.engine.config.bucket_seconds
        if judged is not None and align_down(wm, size) <= align_down(judged, size):
            self._judged[partition] = max(wm, judged)
            return []
        transitions: list[AlertTransition] = []
        for key in sorted(self.keys_by_partition.get(partition, ())):
            kb = self.load(key)
            found = self.catch_up(kb, wm)
            if found is not None:
                transitions.extend(found)
                self.store(kb, partition)
        self._judged[partition] = wm
        return transitions

    def unjudged(self) -> list[int]:
        """The partitions with a progress record whose keys are not all judged through the
        ingest's progress yet (with list hygiene, also waiting for the suppressions counted
        before it): empty once a backlog read to its end has been judged in full."""
        config = self.engine.config
        behind = []
        for partition in self.progress.partitions():
            event_time = self.progress.event_time(partition)
            if event_time is None:
                continue
            if self._judged.get(partition, _NEVER) < config.watermark_for(event_time):
                behind.append(partition)
        return behind

    def aggregation_keys(self) -> list[str]:
        """Every aggregation key this worker holds."""
        return sorted(k for keys in self.keys_by_partition.values() for k in keys)
