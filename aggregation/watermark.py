"""Event-time progress: how far each input partition has been read, and what may be judged.

Two sides, one meaning:

- ``InputProgress`` (the ingest side) keeps, per input partition it reads, the latest event
  time read so far and whether the partition is idle. It refuses events whose time cannot be
  right (too far ahead of the clock, or too far behind the partition's own progress), and it
  writes the progress record that every ingest transaction sends to every partials
  partition after its partials.
- ``Progress`` (the aggregate side) collects those records per partials partition and gives
  the partition's event time: the *minimum* over every input partition of the topic, as
  Flink's watermarks do. A worker catching up on a backlog reads partitions at different
  speeds; judging lateness or closing a bucket by the fastest one would count the slower
  partitions' events as late and evaluate buckets they have not delivered yet.

An idle partition must not hold the watermark back for ever. A partition is idle when its
reader has read everything in it (no lag) and nothing new has come for
``idle_seconds``: then it has nothing in flight, and the others decide. Events that then
arrive on it are judged against the watermark the others moved. When every partition is
idle, the event time is the latest read anywhere: all that was written has been counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aggregation.buckets import event_seconds, event_times
from delivery.adapters import Decoded, EventError

#: Events further ahead of the clock than this are refused (a host with a wrong clock, a
#: webhook sending milliseconds where seconds are expected).
DEFAULT_MAX_AHEAD_SECONDS = 3600
#: Events further behind their input partition's progress than this are refused.
DEFAULT_MAX_BEHIND_SECONDS = 7 * 86400
#: An input partition read to its end that has had nothing new for this long stops holding
#: the watermark back.
DEFAULT_IDLE_SECONDS = 15.0


def _duration(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:g}d"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    return f"{seconds:g}s"


def _iso(t: float) -> str:
    try:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"epoch {t:.0f}"


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """How far an event's time may stray from the present before it is refused."""

    max_ahead_seconds: float = DEFAULT_MAX_AHEAD_SECONDS
    max_behind_seconds: float = DEFAULT_MAX_BEHIND_SECONDS

    def problem(self, t: float, now: float, progress: float | None) -> str | None:
        """Why event time ``t`` is refused, or None: ``now`` is the wall clock, ``progress``
        the latest event time read from the same input so far."""
        if t > now + self.max_ahead_seconds:
            return (
                f"event_time {_iso(t)} is more than {_duration(self.max_ahead_seconds)} "
                f"ahead of the clock ({_iso(now)})"
            )
        if progress is not None and t < progress - self.max_behind_seconds:
            return (
                f"event_time {_iso(t)} is more than {_duration(self.max_behind_seconds)} "
                f"behind its input's progress ({_iso(progress)})"
            )
        return None


@dataclass(slots=True)
class _Source:
    #: Latest event time read (None: nothing read yet).
    latest: float | None = None
    #: Wall-clock time something was last read (or the partition was assigned).
    last_read: float = 0.0
    #: Whether everything written to the partition has been read.
    caught_up: bool = False


class InputProgress:
    """Per input partition read by one ingest consumer: progress, idleness, time bounds."""

    def __init__(
        self, bounds: TimeBounds | None = None, idle_seconds: float = DEFAULT_IDLE_SECONDS
    ) -> None:
        self.bounds = bounds or TimeBounds()
        self.idle_seconds = idle_seconds
        self._sources: dict[str, _Source] = {}
        #: Events refused for their time since start, by direction ("ahead", "behind").
        self.refused: dict[str, int] = {"ahead": 0, "behind": 0}

    # ---- ownership

    def assign(self, sources: Iterable[str], now: float) -> None:
        for source in sources:
            self._sources.setdefault(source, _Source(last_read=now))

    def revoke(self, sources: Iterable[str]) -> None:
        for source in sources:
            self._sources.pop(source, None)

    def owned(self) -> list[str]:
        return sorted(self._sources)

    # ---- reading

    def admit(self, decoded: Decoded, source: str, now: float) -> tuple[Decoded, list[float]]:
        """``decoded`` without the events whose time is refused, which become errors, and the
        event times of the events kept (epoch seconds, in order: the counting needs them).

        The partition's progress moves with the events admitted, so one wrong clock can
        neither move the watermark nor make the good events after it look late.
        """
        [kept], times = self.admit_all([decoded], source, now, event_times(decoded.events))
        return kept, times

    def admit_all(
        self, messages: list[Decoded], source: str, now: float, times: list[float]
    ) -> tuple[list[Decoded], list[float]]:
        """``admit`` for consecutive messages of ``source``, in order: each message as
        ``admit`` leaves it, and the times of every event kept, in order; ``times`` are those
        of all their events (``event_times``). Checked once for all of them in the common
        case (no time can be refused): then ``messages`` and ``times`` themselves come back,
        so that single-event messages do not each pay for the check."""
        state = self._sources.get(source)
        if state is None:
            state = self._sources[source] = _Source(last_read=now)
        state.last_read = now
        bounds = self.bounds
        ahead_limit = now + bounds.max_ahead_seconds
        behind = bounds.max_behind_seconds
        if not any(decoded.feedback for decoded in messages):
            if not times:
                return messages, times
            latest = state.latest
            floor = -math.inf if latest is None else latest - behind
            lo, hi = min(times), max(times)
            if floor <= lo and hi <= ahead_limit and hi - lo <= behind:
                # No event can be refused, whatever their order.
                if latest is None or hi > latest:
                    state.latest = hi
                return messages, times
        kept_times: list[float] = []
        return [self._admit_one(m, state, now, kept_times) for m in messages], kept_times

    def _admit_one(
        self, decoded: Decoded, state: _Source, now: float, times: list[float]
    ) -> Decoded:
        """One message, event by event: its refused events become errors; the times of
        those kept are appended to ``times``."""
        if decoded.feedback:
            decoded = self._admit_feedback(decoded, state, now)
        if not decoded.events:
            return decoded
        bounds = self.bounds
        latest = state.latest
        ahead_limit = now + bounds.max_ahead_seconds
        behind = bounds.max_behind_seconds
        floor = -math.inf if latest is None else latest - behind
        errors: list[EventError] = []
        for index, event in enumerate(decoded.events):
            t = event_seconds(event.event_time)
            if floor <= t <= ahead_limit:
                times.append(t)
                if latest is None or t > latest:
                    latest = t
                    floor = t - behind
                continue
            reason = bounds.problem(t, now, latest)
            assert reason is not None
            self.refused["ahead" if t > ahead_limit else "behind"] += 1
            errors.append(EventError(index, reason, "event_time", event.source_format))
        state.latest = latest
        if not errors:
            return decoded
        bad = {e.index for e in errors}
        kept = [e for i, e in enumerate(decoded.events) if i not in bad]
        return Decoded(kept, [*decoded.errors, *errors], decoded.skipped, decoded.feedback)

    def _admit_feedback(self, decoded: Decoded, state: _Source, now: float) -> Decoded:
        """``decoded`` without the feedback events whose time is refused (the same bounds as
        for delivery events; complaints are rare, so one by one). They move the partition's
        progress as delivery events do."""
        bounds = self.bounds
        kept = []
        errors: list[EventError] = []
        for index, event in enumerate(decoded.feedback):
            t = event_seconds(event.event_time)
            latest = state.latest
            floor = -math.inf if latest is None else latest - bounds.max_behind_seconds
            if floor <= t <= now + bounds.max_ahead_seconds:
                kept.append(event)
                if latest is None or t > latest:
                    state.latest = t
                continue
            reason = bounds.problem(t, now, latest)
            assert reason is not None
            self.refused["ahead" if t > now + bounds.max_ahead_seconds else "behind"] += 1
            errors.append(EventError(index, reason, "event_time", event.source_format))
        if not errors:
            return decoded
        return Decoded(decoded.events, [*decoded.errors, *errors], decoded.skipped, kept)

    def latest(self, source: str) -> float | None:
        state = self._sources.get(source)
        return None if state is None else state.latest

    def set_caught_up(self, source: str, caught_up: bool) -> None:
        state = self._sources.get(source)
        if state is not None:
            state.caught_up = caught_up

    def idle(self, source: str, now: float) -> bool:
        state = self._sources.get(source)
        return state is not None and state.caught_up and now - state.last_read >= self.idle_seconds

    def record(self, now: float, partitions: int) -> dict[str, Any]:
        """The progress record of every owned partition (see ``Progress.update``)."""
        return {
            "of": partitions,
            "sources": {
                source: [state.latest, self.idle(source, now)]
                for source, state in sorted(self._sources.items())
            },
        }


class Progress:
    """How far in event time one partials partition has received every input's partials.

    After sending a batch's partials, the ingest sends each partials partition a progress
    record (``InputProgress.record``). Kafka keeps one partition in order, so once the record
    is read every partial of the batch bound for the partition has been merged. The
    partition's event time is the minimum over the topic's input partitions of their latest
    event time, idle ones left out (module notes); until every input partition has been
    heard of, there is none.
    """

    def __init__(self) -> None:
        self._sources: dict[int, dict[str, list[Any]]] = {}
        self._expected: dict[int, int] = {}
        #: ``event_time`` of each partition since its last record: asked at every merge.
        self._event_times: dict[int, float | None] = {}

    def update(self, partition: int, record: Mapping[str, Any]) -> None:
        self._event_times.pop(partition, None)
        mine = self._sources.setdefault(partition, {})
        if "sources" not in record:
            # A record of the version before idleness: {source: latest}, all active.
            record = {"of": len(record), "sources": {s: [t, False] for s, t in record.items()}}
        self._expected[partition] = max(int(record["of"]), self._expected.get(partition, 0))
        for source, (latest, idle) in record["sources"].items():
            known = mine.get(source)
            if known is None:
                mine[source] = [latest, bool(idle)]
                continue
            if latest is not None and (known[0] is None or latest > known[0]):
                known[0] = latest
            known[1] = bool(idle)

    def event_time(self, partition: int) -> float | None:
        if partition in self._event_times:
            return self._event_times[partition]
        found = self._event_time(partition)
        self._event_times[partition] = found
        return found

    def _event_time(self, partition: int) -> float | None:
        sources = self._sources.get(partition)
        if not sources or len(sources) < self._expected.get(partition, 0):
            return None
        active = [latest for latest, idle in sources.values() if not idle]
        if active:
            if any(t is None for t in active):
                return None
            return float(min(active))
        seen = [latest for latest, _ in sources.values() if latest is not None]
        return float(max(seen)) if seen else None

    def partitions(self) -> list[int]:
        """The partitions a record arrived on."""
        return list(self._sources)

    def sources(self, partition: int) -> dict[str, tuple[float | None, bool]]:
        """What the partition knows of each input partition: (latest event time, idle)."""
        return {s: (v[0], v[1]) for s, v in self._sources.get(partition, {}).items()}


def relayed(record: Mapping[str, Any], via: str, ways: int) -> dict[str, Any]:
    """A progress record (``InputProgress.record``) as passed on by one of ``ways`` relays
    (``via`` names it): each input partition becomes one source per relay, so that
    ``Progress`` waits for the slowest relay of every input partition, not the fastest."""
    return {
        "of": int(record["of"]) * ways,
        "sources": {f"{source}@{via}": value for source, value in record["sources"].items()},
    }
