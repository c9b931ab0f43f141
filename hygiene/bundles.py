"""One recipients-topic message applied to a table of recipient states, at least once.

A message's observations come in their order from ``sequence``: the deliveries (apart in the
message, ``hygiene.observe.Bundle``) only where the presence filter says their key may have
state, each observation with its index among all of the message's.

The worker's agent reads each message at least once: after a crash, the messages since its
last committed offset are read again, on top of a table whose changelog may already hold
their writes. Each entry therefore carries the stamp ``o`` = [offset, index] of the last
observation applied to it, and an observation at or below its entry's stamp is skipped.

A decision is published in three steps: the entry is written with the record as ``pend``;
once the table's writes are acknowledged the record is published; then ``pend`` is dropped.
An entry met with ``pend`` still set (a crash came between the steps) may or may not have
been published: the caller checks the suppressions topic before publishing it again
(``Pending.check``). A decision made afresh was never published (publishing waits for the
write that records it), so it is published with no check.

Each decision is also counted (``suppression_rate``) in a partial for the aggregation keys of
the event that made it, sent at once with the message's offset as its source. The entry keeps
the stamp and reason of the observation that decided (``ds``), so a message read again counts
its decisions again, whether or not the table kept their writes: the same counts under the
same offset, which the aggregation merges once (``KeyBuckets.merge``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from aggregation.buckets import Partial, PartialBuilder
from hygiene.core import DELIVERY, HygieneRules, apply
from hygiene.observe import Bundle, suppression_labels

#: Observation kinds by their names in metrics.
KIND_NAMES = {"d": "delivery", "s": "soft", "h": "hard", "c": "complaint", "r": "release"}


class PresenceFilter:
    """A bounded, in-memory filter of the keys that may have state (one bit per slot, by
    the process's string hash): a delivery to a key it has never seen skips the table. False
    positives cost a table lookup; a key is never forgotten until ``clear``."""

    __slots__ = ("_bits", "_mask")

    def __init__(self, size_bytes: int = 16 * 1024 * 1024) -> None:
        bits = size_bytes * 8
        if bits & (bits - 1):
            raise ValueError("size_bytes must be a power of two")
        self._bits = bytearray(size_bytes)
        self._mask = bits - 1

    def add(self, key: str) -> None:
        h = hash(key) & self._mask
        self._bits[h >> 3] |= 1 << (h & 7)

    def may_have(self, key: str) -> bool:
        h = hash(key) & self._mask
        return bool(self._bits[h >> 3] & (1 << (h & 7)))

    def clear(self) -> None:
        self._bits = bytearray(len(self._bits))


@dataclass(frozen=True)
class Pending:
    """A record to publish for ``key``: ``check`` when it may have been published already."""

    key: str
    record: dict[str, Any]
    check: bool
    #: Wall-clock milliseconds when the decision was recorded (where a check starts reading).
    since_ms: int

    @property
    def number(self) -> int:
        return int(self.record["decision"])


def sequence(
    bundle: Bundle, presence: PresenceFilter | None = None
) -> list[tuple[int, Sequence[Any]]]:
    """``bundle``'s observations in their order, each with its index among all of them (the
    stamp's); with ``presence``, only the deliveries to keys it may hold."""
    keys, times, at, others = bundle.keys, bundle.times, bundle.at, bundle.others
    hits: Sequence[int]
    if presence is None:
        hits = range(len(keys))
    else:
        # The one loop over every delivery of the traffic: the filter's test, inlined.
        bits, mask = presence._bits, presence._mask
        hits = [i for i, k in enumerate(keys) if bits[(h := hash(k) & mask) >> 3] >> (h & 7) & 1]
    out: list[tuple[int, Sequence[Any]]] = []
    j, n = 0, len(others)
    for i in hits:
        # An observation with at[j] deliveries before it comes before delivery at[j].
        while j < n and at[j] <= i:
            out.append((at[j] + j, others[j]))
            j += 1
        out.append((i + j, (keys[i], DELIVERY, times[i])))
    while j < n:
        out.append((at[j] + j, others[j]))
        j += 1
    return out


def apply_bundle(
    table: MutableMapping[str, Any],
    offset: int,
    bundle: Bundle,
    rules: HygieneRules,
    hashed: bool = False,
    presence: PresenceFilter | None = None,
    counts: dict[tuple[str, str], int] | None = None,
    clock: Callable[[], float] = time.time,
    in_flight: set[str] | frozenset[str] = frozenset(),
    counted: list[tuple[Sequence[Any], str]] | None = None,
) -> list[Pending]:
    """Apply one message's observations to ``table``; the records to publish, in order.
    ``in_flight``: keys whose marked decision is being published now (not left by a crash).
    ``counted``, when given, receives (observation, reason) of every observation of the
    message that made a decision, made now or before this message was read again."""
    out: list[Pending] = []
    fresh: set[str] = set()
    if presence is not None:
        # Every key this message gives state may have it for the deliveries after: a reset
        # later in the message must reach the entry. (A key never leaves the filter.)
        for obs in bundle.others:
            presence.add(obs[0])
    entries = sequence(bundle, presence)
    skipped = len(bundle) - len(entries)
    for index, obs in entries:
        key, kind = obs[0], obs[1]
        if counts is not None:
            name = (KIND_NAMES.get(kind, kind), "applied")
            counts[name] = counts.get(name, 0) + 1
        old = table.get(key)
        stamp = [offset, index]
        if old is not None:
            if "pend" in old and key not in fresh and key not in in_flight:
                # Left by a run cut short between recording a decision and publishing it.
                out.append(Pending(key, old["pend"], True, int(old.get("at", 0))))
                fresh.add(key)
            if old.get("o", [-1, -1]) >= stamp:
                # Applied before a crash: its effect is in the entry, and its count (if it
                # decided) goes out again under the same offset.
                decided = old.get("ds")
                if counted is not None and decided is not None and decided[:2] == stamp:
                    counted.append((obs, decided[2]))
                continue
        new, decision = apply(old, obs, rules, hashed)
        if new is None:
            if old is not None:
                del table[key]
            continue
        if new is old:
            continue
        new = dict(new, o=stamp)
        if decision is not None and decision.record is not None:
            now_ms = int(clock() * 1000)
            new["pend"] = decision.record
            new["at"] = now_ms
            reason = decision.record["reason"]
            new["ds"] = [*stamp, reason]
            if counted is not None:
                counted.append((obs, reason))
            out.append(Pending(key, decision.record, False, now_ms))
            fresh.add(key)
        table[key] = new
    if counts is not None and skipped:
        counts[("delivery", "skipped")] = counts.get(("delivery", "skipped"), 0) + skipped
    return out


def published(table: MutableMapping[str, Any], key: str) -> None:
    """Mark ``key``'s pending record published: drop ``pend`` from its entry."""
    entry = table.get(key)
    if entry is not None and "pend" in entry:
        entry = dict(entry)
        del entry["pend"]
        entry.pop("at", None)
        table[key] = entry


def decision_partials(
    builder: PartialBuilder,
    counted: Sequence[tuple[Sequence[Any], str]],
    source: str,
    offset: int,
) -> dict[str, Partial]:
    """The partials counting one message's decisions (``counted`` of ``apply_bundle``) in
    the aggregation keys of the events that made them, stamped with the message's ``offset``
    in ``source`` (its recipients partition), so that a message read again is merged once."""
    for obs, reason in counted:
        source_ip, sending_domain, tenant = suppression_labels(obs)
        builder.add_suppression(
            obs[2],
            obs[3],
            reason,
            source_ip=source_ip,
            sending_domain=sending_domain,
            tenant=tenant,
        )
    builder.note_offset(source, offset)
    return builder.drain()
