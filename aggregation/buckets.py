"""Event-time buckets of delivery counts per aggregation key, and the partials that feed them.

The flow, live and offline alike::

    PartialBuilder.add(...) per event ─► drain() ─► {key: Partial}
        ─► KeyBuckets.merge(partial) per key ─► KeyBuckets.window(start, end) for the rules

Aggregation keys are strings (they are Kafka keys): ``isp=gmail`` for the ISP alone, and
``isp=microsoft|source_ip=1.2.3.4`` when a rule groups by more dimensions (see ``KeySpec``).

Time is event time in integer epoch seconds, cut into buckets ``[start, start + bucket)``.
Two delays apply, as with Flink's early firing plus allowed lateness:

- The *watermark* is the event time every input has reached (``aggregation.watermark``)
  minus the evaluation delay; the caller passes it, and it only moves forward. A bucket
  ending at or before it may be evaluated, so an alert lags the traffic by about the
  evaluation delay (default one minute), not by the allowed lateness.
- The *late cut-off* is the watermark minus (allowed lateness - evaluation delay), that is the
  inputs' event time minus the allowed lateness. Counts for a bucket that ends after it are
  still merged, even if the bucket was evaluated already: they count in every later window
  that covers the bucket. Counts for a bucket ending at or before it are counted in ``late``
  and in no bucket, so buckets behind the cut-off never change again.

A live evaluation at time ``T`` therefore sees the events that arrived by about
``T + evaluation delay``; the offline replay, which reads events in event-time order, sees
the same as long as no event arrived later than that.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from pydantic import TypeAdapter

from aggregation.frozen import BucketMap
from aggregation.topk import DEFAULT_CAPACITY, TopK, reply_key
from aggregation.windows import SlidingSums
from delivery.types import Classification
from schemas.event import DeliveryEvent
from schemas.vocabulary import BounceType, Category, Outcome

#: Members read on the per-event path, as module globals: reading an Enum member off its
#: class (or its ``value``) costs about 0.1 us in Python 3.11, ten times a global's read.
_DELIVERED, _DEFERRED = Outcome.DELIVERED, Outcome.DEFERRED
_SOFT, _HARD = BounceType.SOFT, BounceType.HARD
_DELIVERED_CATEGORY = Category.DELIVERED
#: Each category's name (its ``value``), as the counts key it.
CATEGORY_NAMES: dict[Category, str] = {c: c.value for c in Category}
#: Each outcome's name (its ``value``).
OUTCOME_NAMES: dict[Outcome, str] = {o: o.value for o in Outcome}

#: Dimensions a rule may group by besides the ISP, in the order they appear in key strings.
GROUP_DIMENSIONS: tuple[str, ...] = ("source_ip", "sending_domain", "tenant")

DEFAULT_BUCKET_SECONDS = 60
DEFAULT_LATENESS_SECONDS = 300
#: Buckets are evaluated this long after they end (when the allowed lateness is not shorter).
DEFAULT_EVALUATION_DELAY_SECONDS = 60
#: Reply texts are evidence for alerts over recent windows; older buckets keep counts only,
#: so a day-long baseline does not carry a day of reply samples in every table write.
DEFAULT_EVIDENCE_SECONDS = 3600
#: Distinct sending domains, IPs and campaigns each bucket counts complaints for.
COMPLAINT_SOURCES = 20


# --------------------------------------------------------------------------- keys


def _escape(value: str) -> str:
    return value.replace("%", "%25").replace("|", "%7C").replace("=", "%3D")


def _unescape(value: str) -> str:
    return value.replace("%3D", "=").replace("%7C", "|").replace("%25", "%")


@dataclass(frozen=True, slots=True, order=True)
class KeySpec:
    """Which dimensions, besides the ISP, one family of aggregation keys is grouped by."""

    dims: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.dims) - set(GROUP_DIMENSIONS)
        if unknown:
            raise ValueError(f"unknown group_by dimension(s): {sorted(unknown)}")
        ordered = tuple(d for d in GROUP_DIMENSIONS if d in self.dims)
        if ordered != self.dims:
            object.__setattr__(self, "dims", ordered)

    @classmethod
    def of(cls, dims: Iterable[str]) -> KeySpec:
        return cls(tuple(d for d in GROUP_DIMENSIONS if d in set(dims)))


#: The key family every event feeds: the ISP alone.
ISP_KEY_SPEC = KeySpec(())


def make_key(isp: str, group: Mapping[str, str] | None = None) -> str:
    """``isp=gmail`` or ``isp=microsoft|source_ip=1.2.3.4``: dimensions in a fixed order."""
    parts = [f"isp={_escape(isp)}"]
    for dim in GROUP_DIMENSIONS:
        if group and dim in group:
            parts.append(f"{dim}={_escape(group[dim])}")
    return "|".join(parts)


def parse_key(key: str) -> tuple[str, dict[str, str]]:
    """The ISP and the group labels of a key string made by ``make_key``."""
    isp: str | None = None
    group: dict[str, str] = {}
    for part in key.split("|"):
        name, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"malformed aggregation key {key!r}")
        if name == "isp":
            isp = _unescape(value)
        elif name in GROUP_DIMENSIONS:
            group[name] = _unescape(value)
        else:
            raise ValueError(f"unknown dimension {name!r} in aggregation key {key!r}")
    if isp is None:
        raise ValueError(f"aggregation key without isp: {key!r}")
    return isp, group


# --------------------------------------------------------------------------- counts


@dataclass(slots=True)
class Counts:
    """Attempt counts over one bucket or one window.

    ``soft`` and ``hard`` count attempts by the classifier's bounce type, whatever the
    outcome: a 4xx deferral is a soft bounce, so ``soft`` includes ``deferred``.
    ``categories`` counts every attempt by cause (``delivered`` included); ``replies`` keeps
    the most frequent reply texts of each failure category.

    ``complaints`` counts spam complaints received (feedback reports of type abuse, fraud,
    virus or other) and ``feedback`` the other feedback (not-spam, opt-out): neither is an
    attempt. ``complaint_sources`` counts complaints by what sent the complained-of mail,
    keyed ``d:<sending domain>``, ``i:<source IP>`` and ``c:<campaign>``; at most
    ``COMPLAINT_SOURCES`` distinct values of each kind per bucket are kept (complaints are
    few; past that, the top of a window is approximate).

    ``suppressions`` counts addresses newly put on the suppression list (list hygiene), by
    reason (``hard_bounce``, ``soft_bounce_streak``, ``complaint``), in the bucket of the
    event that decided it: the numerator of ``suppression_rate``. They are counted by the
    recipients stage, which alone knows whether an address was on the list already
    (``hygiene.bundles``); ``add`` never touches them.
    """

    attempts: int = 0
    delivered: int = 0
    deferred: int = 0
    bounced: int = 0
    soft: int = 0
    hard: int = 0
    categories: dict[str, int] = field(default_factory=dict)
    replies: dict[str, TopK] = field(default_factory=dict)
    complaints: int = 0
    feedback: int = 0
    complaint_sources: dict[str, int] = field(default_factory=dict)
    suppressions: dict[str, int] = field(default_factory=dict)

    @property
    def suppressed(self) -> int:
        """New suppressions of every reason."""
        return sum(self.suppressions.values())

    def add_suppression(self, reason: str, count: int = 1) -> None:
        self.suppressions[reason] = self.suppressions.get(reason, 0) + count

    def add_feedback(
        self,
        complaint: bool,
        sending_domain: str | None = None,
        source_ip: str | None = None,
        campaign: str | None = None,
        count: int = 1,
    ) -> None:
        """Count ``count`` equal feedback reports: complaints, or (``complaint`` false)
        other feedback, which names no source."""
        if not complaint:
            self.feedback += count
            return
        self.complaints += count
        sources = self.complaint_sources
        for prefix, value in (("d:", sending_domain), ("i:", source_ip), ("c:", campaign)):
            if not value:
                continue
            name = prefix + value
            if name in sources:
                sources[name] += count
            elif sum(1 for k in sources if k.startswith(prefix)) < COMPLAINT_SOURCES:
                sources[name] = count

    def add(
        self,
        classification: Classification,
        code: int | None,
        enhanced: str | None,
        text: str,
        reply_capacity: int = DEFAULT_CAPACITY,
        reply: str | None = None,
        count: int = 1,
    ) -> None:
        """Count ``count`` equal attempts (one by default); ``reply`` is their ``reply_key``
        when the caller has it already."""
        self.attempts += count
        outcome = classification.outcome
        if outcome is _DELIVERED:
            self.delivered += count
        elif outcome is _DEFERRED:
            self.deferred += count
        else:
            self.bounced += count
        bounce_type = classification.bounce_type
        if bounce_type is _SOFT:
            self.soft += count
        elif bounce_type is _HARD:
            self.hard += count
        category = CATEGORY_NAMES[classification.category]
        self.categories[category] = self.categories.get(category, 0) + count
        if keeps_reply(classification, code, text):
            topk = self.replies.get(category)
            if topk is None:
                topk = self.replies[category] = TopK(reply_capacity)
            topk.add(code, enhanced, text, classification.isp_code, count=count, key=reply)

    def copy(self, with_replies: bool = True) -> Counts:
        """Counts equal to these that share nothing with them (``from_dict(to_dict())``),
        without the reply samples unless ``with_replies``."""
        return Counts(
            self.attempts,
            self.delivered,
            self.deferred,
            self.bounced,
            self.soft,
            self.hard,
            dict(self.categories),
            {c: topk.copy() for c, topk in self.replies.items()} if with_replies else {},
            self.complaints,
            self.feedback,
            dict(self.complaint_sources),
            dict(self.suppressions),
        )

    def merge(self, other: Counts, with_replies: bool = True) -> None:
        self.attempts += other.attempts
        self.delivered += other.delivered
        self.deferred += other.deferred
        self.bounced += other.bounced
        self.soft += other.soft
        self.hard += other.hard
        for category, n in other.categories.items():
            self.categories[category] = self.categories.get(category, 0) + n
        if other.complaints or other.feedback:
            self.complaints += other.complaints
            self.feedback += other.feedback
            sources = self.complaint_sources
            for name, n in other.complaint_sources.items():
                sources[name] = sources.get(name, 0) + n
        if other.suppressions:
            mine_s = self.suppressions
            for reason, n in other.suppressions.items():
                mine_s[reason] = mine_s.get(reason, 0) + n
        if with_replies:
            for category, topk in other.replies.items():
                mine = self.replies.get(category)
                if mine is None:
                    mine = self.replies[category] = TopK(topk.capacity)
                mine.merge(topk)

    def subtract(self, other: Counts) -> None:
        """Take back ``other``, once merged into these counts (replies aside); tallies that
        reach zero go, so the result equals counts that never held ``other``."""
        self.attempts -= other.attempts
        self.delivered -= other.delivered
        self.deferred -= other.deferred
        self.bounced -= other.bounced
        self.soft -= other.soft
        self.hard -= other.hard
        self.complaints -= other.complaints
        self.feedback -= other.feedback
        for mine, theirs in (
            (self.categories, other.categories),
            (self.complaint_sources, other.complaint_sources),
            (self.suppressions, other.suppressions),
        ):
            for name, n in theirs.items():
                left = mine.get(name, 0) - n
                if left:
                    mine[name] = left
                else:
                    mine.pop(name, None)

    def failures(self) -> dict[str, int]:
        """Attempts per failure category (everything but ``delivered``), largest first."""
        items = [(c, n) for c, n in self.categories.items() if c != Category.DELIVERED.value and n]
        return dict(sorted(items, key=lambda cn: (-cn[1], cn[0])))

    def to_dict(self) -> dict[str, Any]:
        # Short keys and omitted zeros: thousands of these sit in one table value.
        out: dict[str, Any] = {"a": self.attempts}
        for short, value in (
            ("d", self.delivered),
            ("f", self.deferred),
            ("b", self.bounced),
            ("s", self.soft),
            ("h", self.hard),
        ):
            if value:
                out[short] = value
        if self.categories:
            out["c"] = dict(self.categories)
        if self.replies:
            out["r"] = {category: topk.to_dict() for category, topk in self.replies.items()}
        if self.complaints:
            out["x"] = self.complaints
        if self.feedback:
            out["y"] = self.feedback
        if self.complaint_sources:
            out["xs"] = dict(self.complaint_sources)
        if self.suppressions:
            out["sp"] = dict(self.suppressions)
        return out

    def top_complaint_sources(self, prefix: str, limit: int = 3) -> list[tuple[str, int]]:
        """The sources of one kind (``d:``, ``i:``, ``c:``) with the most complaints."""
        found = [
            (k[len(prefix) :], n) for k, n in self.complaint_sources.items() if k[:2] == prefix
        ]
        return sorted(found, key=lambda kn: (-kn[1], kn[0]))[:limit]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Counts:
        # Only ever what ``to_dict`` wrote (partials, table values): JSON gives back its
        # types, and a worker merging a backlog decodes tens of thousands of these a second.
        get = data.get
        replies = get("r")
        return cls(
            get("a", 0),
            get("d", 0),
            get("f", 0),
            get("b", 0),
            get("s", 0),
            get("h", 0),
            dict(get("c", ())),
            {k: TopK.from_dict(v) for k, v in replies.items()} if replies else {},
            get("x", 0),
            get("y", 0),
            dict(get("xs", ())),
            dict(get("sp", ())),
        )


# --------------------------------------------------------------------------- time


def keeps_reply(classification: Classification, code: int | None, text: str) -> bool:
    """Whether an attempt's reply goes into the top replies: failures that say something."""
    return classification.category is not _DELIVERED_CATEGORY and bool(text or code)


def _pydantic_utc() -> tzinfo:
    """The time zone pydantic gives every time it reads with ``Z`` or ``+00:00`` (one object)."""
    moment = TypeAdapter(datetime).validate_json('"1970-01-01T00:00:00Z"')
    assert moment.tzinfo is not None
    return moment.tzinfo


_PYDANTIC_UTC = _pydantic_utc()
_PYDANTIC_EPOCH = datetime(1970, 1, 1, tzinfo=_PYDANTIC_UTC)


def event_seconds(moment: datetime) -> float:
    """``moment.timestamp()`` (an aware datetime) at about half the cost.

    ``timestamp()`` subtracts the epoch. Subtracting pydantic's own UTC epoch instead gives
    the same float for every aware time, and for the UTC times events carry (pydantic gives
    them that one tzinfo object) the subtraction skips the two offset calls, which pydantic's
    time zone answers in Rust and which are more than half of the cost. Times in any other
    zone are subtracted with their offsets, as ``timestamp()`` does.
    """
    return (moment - _PYDANTIC_EPOCH).total_seconds()


def event_times(events: Iterable[DeliveryEvent]) -> list[float]:
    """``event_seconds`` of each event's time, in order: the ingest's per-event loop, where a
    call per event would cost a quarter as much again."""
    epoch = _PYDANTIC_EPOCH
    return [(event.event_time - epoch).total_seconds() for event in events]


def epoch_seconds(value: datetime | float) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("event time must be timezone-aware")
        return event_seconds(value)
    return float(value)


def bucket_start(t: float, bucket_seconds: int) -> int:
    return math.floor(t / bucket_seconds) * bucket_seconds


def align_down(t: int, bucket_seconds: int) -> int:
    """The latest bucket boundary at or before ``t``: the end of the last closed bucket."""
    return (t // bucket_seconds) * bucket_seconds


# --------------------------------------------------------------------------- partials


@dataclass(slots=True)
class Partial:
    """Counts of one aggregation key from one ingest batch, per bucket start.

    ``sources`` maps a source partition (any string the caller chooses, e.g. ``"events:3"``)
    to the ``[first, last]`` input offsets the batch covered; ``KeyBuckets.merge`` uses it to
    merge a partial re-sent after a crash only once.
    """

    key: str
    buckets: dict[int, Counts] = field(default_factory=dict)
    max_event_time: float | None = None
    sources: dict[str, list[int]] = field(default_factory=dict)

    @property
    def attempts(self) -> int:
        return sum(c.attempts for c in self.buckets.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "buckets": {str(start): counts.to_dict() for start, counts in self.buckets.items()},
            "max_event_time": self.max_event_time,
            "sources": {p: list(r) for p, r in self.sources.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Partial:
        met = data.get("max_event_time")
        return cls(
            key=str(data["key"]),
            buckets={int(s): Counts.from_dict(c) for s, c in data.get("buckets", {}).items()},
            max_event_time=None if met is None else float(met),
            sources={str(p): [int(r[0]), int(r[1])] for p, r in data.get("sources", {}).items()},
        )


#: Distinct (ISP, source IP, sending domain, tenant) label sets whose keys a builder keeps.
KEY_CACHE_SIZE = 4096


class PartialBuilder:
    """Accumulates one ingest batch into partial counts per aggregation key.

    Every event feeds its ISP key, plus one key per extra ``KeySpec`` (from
    ``alerts.rules.RuleSet.key_specs``) for which the event carries every dimension; an event
    without a source IP feeds no ``source_ip`` key, since an alert on "unknown IP" could not be
    acted on, and the ISP key counts it anyway.
    """

    def __init__(
        self,
        key_specs: Iterable[KeySpec] = (ISP_KEY_SPEC,),
        bucket_seconds: int = DEFAULT_BUCKET_SECONDS,
        reply_capacity: int = DEFAULT_CAPACITY,
        key_cache: dict[tuple[str, str | None, str | None, str | None], list[str]] | None = None,
    ) -> None:
        """``key_cache``: a dict to remember keys in, shared by builders of the same specs."""
        specs = set(key_specs) | {ISP_KEY_SPEC}
        self._extra_specs: list[KeySpec] = sorted(s for s in specs if s.dims)
        self._bucket = bucket_seconds
        self._capacity = reply_capacity
        self._partials: dict[str, Partial] = {}
        self._sources: dict[str, list[int]] = {}
        self._keys = {} if key_cache is None else key_cache

    def __len__(self) -> int:
        return len(self._partials)

    @property
    def reply_capacity(self) -> int:
        return self._capacity

    def add(
        self,
        event_time: datetime | float,
        isp: str,
        classification: Classification,
        *,
        code: int | None = None,
        enhanced: str | None = None,
        text: str = "",
        source_ip: str | None = None,
        sending_domain: str | None = None,
        tenant: str | None = None,
        partition: str | None = None,
        offset: int | None = None,
        count: int = 1,
        reply: str | None = None,
    ) -> None:
        """Count one event, or ``count`` equal ones (``event_time`` then the latest of them:
        all in one bucket, with one reply). ``reply``: its ``reply_key`` if known already."""
        t = epoch_seconds(event_time)
        start = bucket_start(t, self._bucket)
        # Normalizing a reply text costs regex passes: once per event, not once per key.
        if reply is None and keeps_reply(classification, code, text):
            reply = reply_key(code, enhanced, text)
        # Building key strings is a good part of the per-event cost, and there are few
        # distinct ones: remember them by their parts (bounded, see _keys).
        for key in self.keys_of((isp, source_ip, sending_domain, tenant)):
            self.add_to_key(key, t, start, classification, code, enhanced, text, reply, count)
        if partition is not None and offset is not None:
            self.note_offset(partition, offset)

    def add_feedback(
        self,
        event_time: datetime | float,
        isp: str,
        complaint: bool,
        *,
        source_ip: str | None = None,
        sending_domain: str | None = None,
        tenant: str | None = None,
        campaign: str | None = None,
        count: int = 1,
        sources: tuple[str | None, str | None] | None = None,
    ) -> None:
        """Count one feedback report (a complaint unless ``complaint`` is false), or
        ``count`` equal ones, in every key its labels feed, as ``add`` does for attempts.

        ``sources``: the (sending domain, source IP) of the complained-of mail for the top
        sources, when the labels leave out one no rule groups by; the labels' by default."""
        domain, ip = sources if sources is not None else (sending_domain, source_ip)
        for counts in self._counts_of(event_time, (isp, source_ip, sending_domain, tenant)):
            counts.add_feedback(complaint, domain, ip, campaign, count)

    def add_suppression(
        self,
        event_time: datetime | float,
        isp: str,
        reason: str,
        *,
        source_ip: str | None = None,
        sending_domain: str | None = None,
        tenant: str | None = None,
        count: int = 1,
    ) -> None:
        """Count ``count`` addresses newly suppressed for ``reason`` by an event at
        ``event_time`` with these labels, in every key the event fed (as ``add`` does). No
        attempt: the event itself was counted by ``add`` already."""
        for counts in self._counts_of(event_time, (isp, source_ip, sending_domain, tenant)):
            counts.add_suppression(reason, count)

    def _counts_of(
        self, event_time: datetime | float, labels: tuple[str, str | None, str | None, str | None]
    ) -> Iterator[Counts]:
        """The counts of the bucket at ``event_time`` in every key these labels feed, for
        what is no attempt (feedback, suppressions); each key's partial has seen that time."""
        t = epoch_seconds(event_time)
        start = bucket_start(t, self._bucket)
        for key in self.keys_of(labels):
            partial = self._partials.get(key)
            if partial is None:
                partial = self._partials[key] = Partial(key)
            counts = partial.buckets.get(start)
            if counts is None:
                counts = partial.buckets[start] = Counts()
            yield counts
            if partial.max_event_time is None or t > partial.max_event_time:
                partial.max_event_time = t

    def keys_of(self, labels: tuple[str, str | None, str | None, str | None]) -> list[str]:
        """The keys an event with these (ISP, source IP, sending domain, tenant) feeds."""
        keys = self._keys.get(labels)
        return self._keys_for(labels) if keys is None else keys

    def _keys_for(self, labels: tuple[str, str | None, str | None, str | None]) -> list[str]:
        isp, *dims = labels
        values = dict(zip(GROUP_DIMENSIONS, dims, strict=True))
        keys = [make_key(isp)]
        for spec in self._extra_specs:
            group: dict[str, str] = {}
            for dim in spec.dims:
                value = values[dim]
                if not value:
                    break
                group[dim] = value
            else:
                keys.append(make_key(isp, group))
        if len(self._keys) >= KEY_CACHE_SIZE:
            # Labels may come from anywhere (a source IP per event): never grow unbounded.
            self._keys.clear()
        self._keys[labels] = keys
        return keys

    def note_offset(self, partition: str, offset: int) -> None:
        """Record that the batch covers ``offset`` of ``partition`` (even if it was skipped)."""
        span = self._sources.get(partition)
        if span is None:
            self._sources[partition] = [offset, offset]
        else:
            span[0] = min(span[0], offset)
            span[1] = max(span[1], offset)

    def add_to_key(
        self,
        key: str,
        t: float,
        start: int,
        classification: Classification,
        code: int | None,
        enhanced: str | None,
        text: str,
        reply: str | None,
        count: int = 1,
    ) -> None:
        """Count ``count`` equal attempts, the latest at ``t``, in bucket ``start`` of ``key``
        alone (``add`` feeds every key of an event; a caller may sum what its events add to
        each key first). ``reply`` is their ``reply_key``, None when they keep none."""
        partial = self._partials.get(key)
        if partial is None:
            partial = self._partials[key] = Partial(key)
        counts = partial.buckets.get(start)
        if counts is None:
            counts = partial.buckets[start] = Counts()
        counts.add(classification, code, enhanced, text, self._capacity, reply, count)
        if partial.max_event_time is None or t > partial.max_event_time:
            partial.max_event_time = t

    def drain(self) -> dict[str, Partial]:
        """The batch's partials by key, each stamped with the batch's offset ranges; resets."""
        partials, self._partials = self._partials, {}
        sources, self._sources = self._sources, {}
        for partial in partials.values():
            partial.sources = {p: list(r) for p, r in sources.items()}
        return partials


# --------------------------------------------------------------------------- key buckets


def default_evaluation_delay(lateness_seconds: int) -> int:
    """The evaluation delay when none is configured: one minute, or the lateness if shorter."""
    return min(DEFAULT_EVALUATION_DELAY_SECONDS, lateness_seconds)


@dataclass(frozen=True, slots=True)
class AggregationConfig:
    """How buckets are cut, when they are evaluated, and how long they are kept.

    Built from the rules' ``settings`` by ``alerts.rules.RuleSet.aggregation_config``. New
    fields go at the end: stored ``KeyBuckets`` values hold the fields as a list, in order.
    """

    bucket_seconds: int = DEFAULT_BUCKET_SECONDS
    #: How far behind the latest event time a bucket may end and still accept counts.
    lateness_seconds: int = DEFAULT_LATENESS_SECONDS
    #: How far behind the watermark buckets are kept: the longest window plus baseline period
    #: the rules read, plus one bucket of margin.
    retention_seconds: int = 2 * 3600
    evidence_seconds: int = DEFAULT_EVIDENCE_SECONDS
    reply_capacity: int = DEFAULT_CAPACITY
    #: How far behind the latest event time a bucket must end to be evaluated; at most the
    #: lateness, since a bucket has to be open until it is evaluated.
    evaluation_delay_seconds: int = DEFAULT_EVALUATION_DELAY_SECONDS

    def __post_init__(self) -> None:
        if self.bucket_seconds <= 0 or 86400 % self.bucket_seconds:
            raise ValueError("bucket_seconds must be positive and divide a day")
        if self.lateness_seconds < 0 or self.retention_seconds < self.bucket_seconds:
            raise ValueError("lateness must be >= 0 and retention at least one bucket")
        if not 0 <= self.evaluation_delay_seconds <= self.lateness_seconds:
            raise ValueError(
                f"evaluation_delay_seconds ({self.evaluation_delay_seconds}) must be >= 0 and "
                f"<= lateness_seconds ({self.lateness_seconds})"
            )

    @classmethod
    def from_list(cls, values: Sequence[Any]) -> AggregationConfig:
        """The config stored by ``KeyBuckets.to_dict``; older, shorter lists get defaults."""
        ints = [int(v) for v in values]
        if len(ints) == 5:
            # Stored before the evaluation delay existed: give it the value the same rules
            # file gets today, so restoring with and without today's config agree.
            ints.append(default_evaluation_delay(ints[1]))
        return cls(*ints)

    def to_list(self) -> list[int]:
        return [
            self.bucket_seconds,
            self.lateness_seconds,
            self.retention_seconds,
            self.evidence_seconds,
            self.reply_capacity,
            self.evaluation_delay_seconds,
        ]

    def watermark_for(self, max_event_time: float) -> int:
        """The watermark reached once ``max_event_time`` is seen (whole seconds).

        Live and offline alike compute it this way from the event time every input has
        reached, so that a watermark means the same everywhere.
        """
        return math.floor(max_event_time) - self.evaluation_delay_seconds

    @property
    def kept_seconds(self) -> int:
        """How long behind the watermark a bucket is kept: as long as a rule reads it
        (``retention``) and counts may still come into it (the lateness past the delay)."""
        return max(self.retention_seconds, self.lateness_seconds - self.evaluation_delay_seconds)

    def late_cutoff(self, watermark: int) -> int:
        """Buckets ending at or before this, for ``watermark``, accept no more counts.

        ``watermark - (lateness - delay)``: with ``watermark_for`` this is the maximum event
        time minus the allowed lateness. Deriving it from the watermark rather than from the
        key's own maximum event time keeps a key that had no recent traffic consistent with
        the rest, and a key fed by a fast input from judging a slow one's events late.
        """
        return watermark - (self.lateness_seconds - self.evaluation_delay_seconds)


@dataclass(slots=True)
class KeyBuckets:
    """All buckets of one aggregation key: the value of the aggregator's table.

    ``watermark`` is the evaluated-through event time: buckets ending at or before it may be
    evaluated. Such a bucket still accepts counts until ``late_cutoff()`` reaches its end
    (see the module notes). ``offsets`` holds the last merged input offset per source
    partition (merge idempotence). ``late`` counts attempts that arrived for buckets behind
    the cut-off and were not counted in any bucket; ``duplicates`` counts partials skipped as
    already merged; ``overlaps`` counts partials merged although their offset range began
    inside an already merged one (their overlap is then counted twice; see ``merge``);
    ``reopened`` counts attempts merged into buckets already evaluated (within the lateness,
    so counted, but the rules judged those buckets without them).
    """

    key: str
    config: AggregationConfig = field(default_factory=AggregationConfig)
    buckets: BucketMap = field(init=False)
    max_event_time: float | None = None
    watermark: int | None = None
    late: int = 0
    duplicates: int = 0
    overlaps: int = 0
    reopened: int = 0
    offsets: dict[str, int] = field(default_factory=dict)
    #: Window sums kept between evaluations (``aggregation.windows``); not stored.
    sums: SlidingSums | None = field(default=None, compare=False, repr=False)
    #: Starts of the buckets ``advance`` dropped, when a caller collects them (not None):
    #: the aggregator deletes their table entries.
    pruned: list[int] | None = field(default=None, compare=False, repr=False)
    #: The earliest bucket counts were merged into since ``alerts.catchup`` last cleared it.
    touched: int | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.buckets = BucketMap(self.config.bucket_seconds)

    # ---- writing

    def merge(self, partial: Partial, watermark: int | None = None) -> int:
        """Merge one partial; return how many of its attempts were late (and not counted).

        ``watermark``, when given, first advances the evaluated-through time (the watermark
        of every input, ``aggregation.watermark.Progress``). The key's own latest event time
        never moves it: a worker reading its inputs at different speeds would then judge the
        slower inputs' events late against the fastest one. Counts for buckets ending at or
        before the late cut-off of the watermark so far are late; all others are merged, also
        into buckets that were evaluated already.

        A partial whose offset ranges all end at or before the last merged offset of their
        source partitions is a re-send and is skipped. One that starts inside a merged range
        but extends past it (the batch was cut differently after a restart) cannot be split,
        so it is merged and counted in ``overlaps``: over-counting one batch is the lesser
        harm than losing it.
        """
        if partial.key != self.key:
            raise ValueError(f"partial for {partial.key!r} merged into {self.key!r}")
        if watermark is not None:
            self.advance(watermark)
        if partial.sources:
            if all(r[1] <= self.offsets.get(p, -1) for p, r in partial.sources.items()):
                self.duplicates += 1
                return 0
            if any(r[0] <= self.offsets.get(p, -1) for p, r in partial.sources.items()):
                self.overlaps += 1
            for p, r in partial.sources.items():
                self.offsets[p] = max(self.offsets.get(p, -1), r[1])
        size = self.config.bucket_seconds
        cutoff = self.late_cutoff()
        evaluated = self.watermark
        late = 0
        for start, counts in partial.buckets.items():
            if start % size:
                raise ValueError(f"bucket start {start} is not aligned on {size}s")
            if cutoff is not None and start + size <= cutoff:
                late += counts.attempts
                continue
            if evaluated is not None and start + size <= evaluated:
                self.reopened += counts.attempts
            mine = self.buckets.get(start)
            if mine is None:
                self.buckets[start] = counts.copy()
            else:
                mine.merge(counts)
            if self.sums is not None:
                self.sums.add(start, counts)
            if self.touched is None or start < self.touched:
                self.touched = start
        self.late += late
        if partial.max_event_time is not None and (
            self.max_event_time is None or partial.max_event_time > self.max_event_time
        ):
            self.max_event_time = partial.max_event_time
        return late

    def late_cutoff(self) -> int | None:
        """Buckets ending at or before this accept no more counts (``None``: all do)."""
        if self.watermark is None:
            return None
        return self.config.late_cutoff(self.watermark)

    def judged_through(self, watermark: int) -> None:
        """Move the evaluated-through time to ``watermark`` without pruning (a key asleep,
        ``alerts.catchup.Sleep``, whose verdicts there are known); ``advance`` prunes later."""
        if self.watermark is None or watermark > self.watermark:
            self.watermark = watermark

    def advance(self, watermark: int) -> None:
        """Move the evaluated-through time to ``watermark``; prune what no one needs.

        A bucket is dropped only once no rule reads it (it ended ``retention`` before the
        watermark) and no count may still land in it (it ended at or before the late
        cut-off); reply samples likewise go only once both the evidence period and the cut-off
        are behind the bucket, and the bucket is then packed (``aggregation.frozen``).
        Pruning by the watermark alone would, when the lateness outlasts the retention, drop
        a bucket that a late count then re-creates: the result would depend on the order
        partials arrive in.
        """
        if self.watermark is not None and watermark <= self.watermark:
            return
        self.watermark = watermark
        size = self.config.bucket_seconds
        drop_before = watermark - self.config.kept_seconds
        floor = align_down(drop_before, size)
        buckets, sums = self.buckets, self.sums
        leaving: dict[int, Counts] = {}
        oldest = buckets.oldest()
        if oldest is not None and oldest + size <= drop_before:
            # Read them only if a kept sum holds them: most steps, every sum starts later.
            if sums is not None and sums.reaches(floor):
                leaving = buckets.ending_by(drop_before)
            dropped = buckets.drop_ending_by(drop_before)
            if dropped and self.pruned is not None:
                self.pruned.extend(dropped)
        buckets.freeze_ending_by(
            min(watermark - self.config.evidence_seconds, self.config.late_cutoff(watermark))
        )
        if sums is not None:
            sums.drop(floor, leaving)

    # ---- reading

    def closed_end(self) -> int | None:
        """End of the last bucket the watermark passed: the latest time a window may end at."""
        if self.watermark is None:
            return None
        return align_down(self.watermark, self.config.bucket_seconds)

    def window(self, start: int, end: int, with_replies: bool = False) -> Counts:
        """Sum of the buckets in ``[start, end)``; both must be bucket-aligned. Without
        replies, the sum is moved from the nearest one kept (``aggregation.windows``): two
        merges per boundary stepped, whatever the window's length."""
        size = self.config.bucket_seconds
        if start % size or end % size:
            raise ValueError(f"window [{start}, {end}) is not aligned on {size}s buckets")
        if not with_replies:
            if self.sums is None:
                self.sums = SlidingSums(size, Counts())
            return self.sums.window(self.buckets, start, end)
        total = Counts()
        buckets = self.buckets
        for s in range(start, end, size):
            counts = buckets.get(s)
            if counts is not None:
                total.merge(counts, with_replies=with_replies)
        return total

    def series(self, start: int, end: int, step: int) -> list[Counts]:
        """Sums over consecutive ``step``-second slices of ``[start, end)``, oldest first."""
        return [self.window(s, min(s + step, end)) for s in range(start, end, step)]

    # ---- storage

    def to_dict(self, with_buckets: bool = True) -> dict[str, Any]:
        """The stored form; without the buckets when they are stored one by one."""
        return {
            "key": self.key,
            "config": self.config.to_list(),
            "buckets": (
                {str(s): c.to_dict() for s, c in self.buckets.items()} if with_buckets else {}
            ),
            "max_event_time": self.max_event_time,
            "watermark": self.watermark,
            "late": self.late,
            "duplicates": self.duplicates,
            "overlaps": self.overlaps,
            "offsets": dict(self.offsets),
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], config: AggregationConfig | None = None
    ) -> KeyBuckets:
        """Restore a stored value; ``config`` (today's rules) replaces the stored one.

        Retention, lateness and the evaluation delay may change with the rules; the bucket
        size may not, since the stored buckets are cut on it. The watermark never moves back,
        so a longer evaluation delay takes effect once events catch up with it.
        """
        stored = AggregationConfig.from_list(data["config"])
        if config is not None and config.bucket_seconds != stored.bucket_seconds:
            raise ValueError(
                f"stored buckets of {data['key']!r} are {stored.bucket_seconds}s, "
                f"the configuration asks for {config.bucket_seconds}s"
            )
        met = data.get("max_event_time")
        wm = data.get("watermark")
        kb = cls(
            key=str(data["key"]),
            config=config or stored,
            max_event_time=None if met is None else float(met),
            watermark=None if wm is None else int(wm),
            late=int(data.get("late", 0)),
            duplicates=int(data.get("duplicates", 0)),
            overlaps=int(data.get("overlaps", 0)),
            offsets={str(p): int(o) for p, o in data.get("offsets", {}).items()},
        )
        for start, counts in data.get("buckets", {}).items():
            kb.buckets[int(start)] = Counts.from_dict(counts)
        return kb


def merge_all(
    table: dict[str, KeyBuckets],
    partials: Mapping[str, Partial],
    config: AggregationConfig,
    watermark: int | None = None,
) -> int:
    """Merge a batch of partials into a dict of ``KeyBuckets`` (offline use); total late."""
    late = 0
    for key, partial in partials.items():
        kb = table.get(key)
        if kb is None:
            kb = table[key] = KeyBuckets(key, config)
        late += kb.merge(partial, watermark)
    return late


def keys_for(specs: Sequence[KeySpec], isp: str, labels: Mapping[str, str | None]) -> list[str]:
    """The aggregation keys one event with these labels feeds (for tests and tools)."""
    keys = [make_key(isp)]
    for spec in sorted(set(specs)):
        if not spec.dims:
            continue
        group = {d: labels.get(d) for d in spec.dims}
        if all(group.values()):
            keys.append(make_key(isp, {d: v for d, v in group.items() if v}))
    return keys
