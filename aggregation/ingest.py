"""The ingest core: one message's bytes to counted partials, for the worker and ``replay``.

``Engine`` holds the loaded knowledge (rules, classifier, ISP resolver, event-time bounds)
built from the settings; ``IngestBatch`` reads messages into chunks of partials with
``EventGroups`` (events counted once per group of equal ones). The worker's ingest consumer
(``streams.ingest``) and the offline replay call the same code, so one setting means the same
thing in both.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, TypeVar

from aggregation.buckets import (
    GROUP_DIMENSIONS,
    OUTCOME_NAMES,
    AggregationConfig,
    Partial,
    PartialBuilder,
    event_seconds,
    event_times,
    keeps_reply,
)
from aggregation.topk import reply_key
from aggregation.watermark import InputProgress, TimeBounds
from alerts.evaluate import Evaluator
from alerts.rules import RuleSet, load_default_rules, load_rules
from delivery.adapters import Decoded, decode_message
from delivery.classify import ReplyClassifier, default_classifier, load_classifier
from delivery.isp import IspResolver, load_resolver
from delivery.mx_lookup import MxCache
from delivery.types import Classification
from hygiene.core import HygieneRules, hash_key_from_settings, rules_from_settings
from hygiene.observe import Bundle, Observer
from schemas.event import DeliveryEvent, FeedbackEvent
from schemas.settings import Settings
from schemas.vocabulary import BounceType, Category

#: Distinct failure replies (code, enhanced code, text) whose reply keys an Engine keeps.
REPLY_KEY_CACHE_SIZE = 4096
#: Distinct recipient domains (and label sets) whose ISP keys (and values) an Engine keeps.
ISP_KEY_CACHE_SIZE = 65_536

K = TypeVar("K")
V = TypeVar("V")


def remember(cache: dict[K, V], key: K, value: V, limit: int) -> V:
    """Store ``value`` in ``cache``, emptied first when full: what these caches hold comes
    from the input (domains, texts with ids) and must never grow without end."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value


@dataclass
class Engine:
    """The loaded knowledge and rules of one worker."""

    rules: RuleSet
    classifier: ReplyClassifier
    resolver: IspResolver
    input_format: str = "auto"
    #: MX hosts of domains the ISP table does not know (``BOUNCEWATCH_MX_LOOKUP``).
    mx_cache: MxCache | None = None
    #: How far an event's time may stray from the present (``aggregation.watermark``).
    time_bounds: TimeBounds = field(default_factory=TimeBounds)
    #: List hygiene's rules (``BOUNCEWATCH_HYGIENE``), None when it is off.
    hygiene: HygieneRules | None = None
    #: Key of the HMAC that stands for addresses (``BOUNCEWATCH_SUPPRESSION_HASH_KEY``).
    hygiene_hash_key: bytes | None = None
    #: Partitions of the recipients topic (the observations' partitioning).
    recipient_partitions: int = 1
    config: AggregationConfig = field(init=False)
    evaluator: Evaluator = field(init=False)

    def __post_init__(self) -> None:
        self.config = self.rules.aggregation_config()
        self.evaluator = Evaluator(self.rules, self.isp_name)
        self._specs = self.rules.key_specs()
        # Every batch has a builder of its own; the keys they build are the same.
        self._key_cache: dict[tuple[str, str | None, str | None, str | None], list[str]] = {}
        self._reply_keys: dict[tuple[int | None, str | None, str], str] = {}
        #: ISP key by recipient domain as written (events without an MX host): resolving
        #: normalizes the domain first, a dict lookup of the raw one is what recurs.
        self.isp_keys: dict[str, str] = {}
        #: ISP key by (recipient domain as written, MX host) of events that name their MX.
        self.mx_isp_keys: dict[tuple[str, str], str] = {}
        self.delivered = self.classifier.classify(250, None, "", None)
        self.label_dims = tuple(
            d for d in GROUP_DIMENSIONS if any(d in spec.dims for spec in self._specs)
        )
        self._label_values: dict[Labels, tuple[str | None, str | None, str | None]] = {}

    @classmethod
    def packaged(
        cls,
        rules: RuleSet | None = None,
        *,
        hygiene: HygieneRules | None = None,
        recipient_partitions: int = 1,
        mx_cache: MxCache | None = None,
    ) -> Engine:
        """An engine of the packaged reply table and ISP table, with ``rules`` (default: the
        packaged rules): what tests and the in-process benchmarks run, no settings read."""
        return cls(
            rules=rules if rules is not None else load_default_rules(),
            classifier=default_classifier(),
            resolver=load_resolver(None),
            mx_cache=mx_cache,
            hygiene=hygiene,
            recipient_partitions=recipient_partitions,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, rules: RuleSet | None = None, *, mx_lookup: bool = True
    ) -> Engine:
        """The engine the settings describe; ``rules`` instead of the settings' rules file
        (``replay --rules``). ``mx_lookup=False`` leaves MX lookups out even where the
        settings turn them on: an offline replay must not depend on when answers land."""
        if rules is None:
            rules = load_rules(settings.rules_file) if settings.rules_file else load_default_rules()
        return cls(
            rules=rules,
            classifier=load_classifier(settings.reply_rules_file)
            if settings.reply_rules_file
            else default_classifier(),
            resolver=load_resolver(settings.isp_overrides_file, unknown=settings.isp_unknown),
            input_format=settings.input_format,
            mx_cache=MxCache(nameservers=settings.mx_nameserver_list)
            if settings.mx_lookup and mx_lookup
            else None,
            time_bounds=TimeBounds(settings.max_event_ahead, settings.max_event_behind),
            hygiene=rules_from_settings(settings) if settings.hygiene else None,
            hygiene_hash_key=hash_key_from_settings(settings),
            recipient_partitions=settings.topic_partitions,
        )

    def isp_name(self, key: str) -> str:
        return self.resolver.name(key)

    def isp_key(self, event: DeliveryEvent | FeedbackEvent) -> str:
        """The key of the ISP that received ``event``.

        The answer is remembered by the domain as written (and the event's MX host, if it
        names one), unless it may still change: an event without an MX host to a domain the
        ISP table does not know, while MX lookups are on (its first events count as unknown
        until the lookup lands in the cache).
        """
        domain, mx = event.recipient_domain, event.mx_host
        if mx is None and self.mx_cache is not None and not self.resolver.knows(domain):
            return self.resolver.resolve(domain, self.mx_cache.get(domain)).key
        key = self.resolver.resolve(domain, mx).key
        written = event.recipient.rpartition("@")[2]
        if mx is None:
            remember(self.isp_keys, written, key, ISP_KEY_CACHE_SIZE)
        else:
            remember(self.mx_isp_keys, (written, mx), key, ISP_KEY_CACHE_SIZE)
        return key

    def labels_getter(self) -> Callable[[DeliveryEvent | FeedbackEvent], Labels]:
        """A function giving an event's labels (see ``Labels``), as fast as Python gets."""
        if not self.label_dims:
            return lambda event: None
        return attrgetter(*self.label_dims)

    def label_values(self, labels: Labels) -> tuple[str | None, str | None, str | None]:
        """(source IP, sending domain, tenant) of ``labels``, None where no rule reads it."""
        values = self._label_values.get(labels)
        if values is None:
            given = labels if len(self.label_dims) > 1 else (labels,)
            named = dict(zip(self.label_dims, given, strict=True)) if self.label_dims else {}
            values = (named.get("source_ip"), named.get("sending_domain"), named.get("tenant"))
            remember(self._label_values, labels, values, ISP_KEY_CACHE_SIZE)
        return values

    def reply_key(self, code: int | None, enhanced: str | None, text: str) -> str:
        """``aggregation.topk.reply_key``, remembered: failure texts repeat, and normalizing
        one costs seven regex passes (bounded like the key cache: texts may carry ids)."""
        parts = (code, enhanced, text)
        key = self._reply_keys.get(parts)
        if key is None:
            key = remember(
                self._reply_keys, parts, reply_key(code, enhanced, text), REPLY_KEY_CACHE_SIZE
            )
        return key

    def observer(self) -> Observer | None:
        """A collector of hygiene observations for one batch, None with hygiene off."""
        if self.hygiene is None:
            return None
        return Observer(self.hygiene, self.recipient_partitions, self.hygiene_hash_key)

    def builder(self) -> PartialBuilder:
        return PartialBuilder(
            self._specs,
            self.config.bucket_seconds,
            self.config.reply_capacity,
            key_cache=self._key_cache,
        )


@dataclass
class BatchTally:
    """What one ingest batch saw: metric labels (counted once per batch) and progress."""

    events: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    #: Attempts with a soft bounce type, by ISP: the numerator of ``soft_bounce_rate``.
    soft: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    #: Highest event time read per input source ("topic:partition") in this batch.
    progress: dict[str, float] = field(default_factory=dict)
    #: Lowest event time read in this batch.
    earliest: float | None = None

    def span(self) -> float:
        """Event time between the batch's earliest event and its newest."""
        if self.earliest is None or not self.progress:
            return 0.0
        return max(self.progress.values()) - self.earliest


#: Groups ``EventGroups.feeding`` feeds between two of its steps: some milliseconds of work.
FEED_STEP_GROUPS = 1024
#: Event time one flush of partials may span at most: a partial holds one entry per bucket it
#: covers, and a bundle of them must stay well under Kafka's message size limit.
MAX_FLUSH_SPAN_SECONDS = 1800


#: The dimensions an event is labelled with, as far as the rules group by them: one value or
#: a tuple of them (``Engine.label_dims``), None when no rule groups by any.
Labels = Any
#: One group of equal events: (bucket start, ISP key, labels, id of the classification,
#: code, enhanced code, reply key or None, source format).
GroupKey = tuple[int, str, Labels, int, int | None, str | None, str | None, str]


class EventGroups:
    """The events of one flush, counted once per group of equal ones.

    Events that would add the same thing to the same partials (same bucket, ISP, labels,
    classification, codes and reply key) are counted together and fed to the
    ``PartialBuilder`` once, with their number, at ``feed``. The partials are the same as
    with one ``PartialBuilder.add`` per event: counts add up in any order, a partial's
    ``max_event_time`` is the latest of each group's, and groups are fed in the order of
    their first event, so each reply's sample (and codes) are those of its first event.
    Only space-saving's eviction depends on the order of events; when some bucket of some
    ISP saw more distinct replies of one category than a summary keeps, the events with a
    reply are fed one by one in their order instead.

    ``count`` is the per-event hot path of the worker. A delivered attempt (a 2xx reply, the
    bulk of the traffic) needs neither the classifier nor its codes and text: its group is
    its bucket, ISP and labels. Labels hold only the dimensions some rule groups by, so that
    events differing in one nobody reads fall in one group.
    """

    __slots__ = (
        "_engine",
        "_labels",
        "bucket_seconds",
        "delivered",
        "feedback",
        "groups",
        "hygiene",
        "replies",
    )

    def __init__(self, engine: Engine, hygiene: Observer | None = None) -> None:
        self._engine = engine
        #: Where each event's hygiene observation goes (``hygiene.observe``), if anywhere.
        self.hygiene = hygiene
        self._labels = engine.labels_getter()
        self.bucket_seconds = engine.config.bucket_seconds
        #: Group key -> [events, latest event time, classification, first event's text].
        self.groups: dict[GroupKey, list[Any]] = {}
        #: Delivered attempts (2xx, no status: the bulk), apart and by a shorter key, one
        #: dict per bucket: bucket number -> (ISP key, labels, source format) -> [events,
        #: latest event time]. The bucket's dict is small and stays in the CPU's caches while
        #: the events of one bucket are read; one dict of a backlog batch's every bucket
        #: would not (a third of the loop's time went to that lookup).
        self.delivered: dict[int, dict[tuple[str, Labels, str], list[Any]]] = {}
        #: Every event with a reply, in order: (group key, text, event time).
        self.replies: list[tuple[GroupKey, str, float]] = []
        #: Feedback events, one by one (they are rare): (time, ISP, labels, the event).
        self.feedback: list[tuple[float, str, Labels, FeedbackEvent]] = []

    def __len__(self) -> int:
        """Groups held (delivered ones and the rest)."""
        return len(self.groups) + sum(len(groups) for groups in self.delivered.values())

    def count_feedback(self, events: list[FeedbackEvent], source: str, tally: BatchTally) -> None:
        """Count complaints and other feedback read from input ``source``. Apart from
        ``count``, so that the delivery events' loop does not pay for them."""
        isp_key = self._engine.isp_key
        labels_of = self._labels
        progress = tally.progress
        hygiene = self.hygiene
        for event in events:
            t = event_seconds(event.event_time)
            isp = isp_key(event)
            self.feedback.append((t, isp, labels_of(event), event))
            if hygiene is not None and event.is_complaint and "@" in event.recipient:
                labels = self._engine.label_values(labels_of(event))
                hygiene.complaint(event.recipient, event.recipient_domain, t, isp, labels)
            if t > progress.get(source, -math.inf):
                progress[source] = t
            if tally.earliest is None or t < tally.earliest:
                tally.earliest = t

    def count(
        self,
        events: list[DeliveryEvent],
        source: str,
        tally: BatchTally,
        times: list[float] | None = None,
    ) -> None:
        """Count ``events`` (read from input ``source``) into their groups; ``times``, when
        given, are their event times in epoch seconds (computed once, by the time check)."""
        engine = self._engine
        classify = engine.classifier.classify
        isp_keys = engine.isp_keys
        mx_isp_keys = engine.mx_isp_keys
        isp_key = engine.isp_key
        labels_of = self._labels
        size = self.bucket_seconds
        floor = math.floor
        counted = self.groups
        get = counted.get
        replies = self.replies
        delivered = engine.delivered
        hygiene = self.hygiene
        if times is None:
            times = event_times(events)
        if not times:
            return
        progress = tally.progress
        newest = max(progress.get(source, -math.inf), max(times))
        earliest = tally.earliest
        lowest = min(math.inf if earliest is None else earliest, min(times))
        plain = self.delivered
        number: int | None = None
        bucket: dict[tuple[str, Labels, str], list[Any]] = {}
        for event, t in zip(events, times, strict=True):
            mx = event.mx_host
            domain = event.recipient.rpartition("@")[2]
            isp = isp_keys.get(domain) if mx is None else mx_isp_keys.get((domain, mx))
            if isp is None:
                isp = isp_key(event)
            reply = event.reply
            code = reply.code
            status = event.status
            if code is not None and 200 <= code < 300 and status is None:
                # What ReplyClassifier.classify answers first for such a reply; its codes
                # and text go nowhere (delivered attempts keep no reply).
                at = floor(t / size)
                if at != number:
                    number = at
                    bucket = plain.setdefault(at, {})
                pk = (isp, labels_of(event), event.source_format)
                group = bucket.get(pk)
                if group is None:
                    bucket[pk] = [1, t]
                else:
                    group[0] += 1
                    if t > group[1]:
                        group[1] = t
                if hygiene is not None:
                    hygiene.delivery(event.recipient, domain, t)
                continue
            enhanced = reply.enhanced
            text = reply.text
            classification = classify(code, enhanced, text, status)
            key = (
                engine.reply_key(code, enhanced, text)
                if keeps_reply(classification, code, text)
                else None
            )
            gk: GroupKey = (
                floor(t / size) * size,
                isp,
                labels_of(event),
                id(classification),
                code,
                enhanced,
                key,
                event.source_format,
            )
            group = get(gk)
            if group is None:
                # The classification is kept alive in the group, so its id stays unique.
                counted[gk] = [1, t, classification, text]
            else:
                group[0] += 1
                if t > group[1]:
                    group[1] = t
            if key is not None:
                replies.append((gk, text, t))
            if hygiene is not None:
                if classification is delivered:
                    hygiene.delivery(event.recipient, domain, t)
                else:
                    # The labels say where a suppression this event decides is counted.
                    labels = engine.label_values(gk[2])
                    hygiene.attempt(event.recipient, domain, t, isp, classification, text, labels)
        progress[source] = newest
        tally.earliest = lowest

    def feed(self, builder: PartialBuilder, tally: BatchTally) -> None:
        """Add every group to ``builder`` and count it in ``tally``; then empty."""
        for _ in self.feeding(builder, tally):
            pass

    def feeding(
        self, builder: PartialBuilder, tally: BatchTally, step: int = FEED_STEP_GROUPS
    ) -> Iterator[None]:
        """``feed`` in steps of about ``step`` groups, for a caller that has other work to
        let in between (the worker's event loop): a backlog's chunk holds tens of thousands
        of groups, a second or more of work in one piece."""
        groups, replies = self.groups, self.replies
        crowded = self._crowded(builder.reply_capacity)
        events, soft = tally.events, tally.soft
        outcome_names, soft_type = OUTCOME_NAMES, BounceType.SOFT
        dims = self._engine.label_values

        def add(gk: GroupKey, classification: Classification, text: str, t: float, n: int) -> None:
            _, isp, labels, _, code, enhanced, reply, _ = gk
            source_ip, sending_domain, tenant = dims(labels)
            builder.add(
                t,
                isp,
                classification,
                code=code,
                enhanced=enhanced,
                text=text,
                source_ip=source_ip,
                sending_domain=sending_domain,
                tenant=tenant,
                count=n,
                reply=reply,
            )

        # What the groups add to one key is summed first (an ISP's key gets the groups of
        # every label set of the ISP: source IP x sending domain), in the order of the groups:
        # so each reply's sample is still that of its first event. Only a crowded summary
        # needs its replies one by one, in their order (below).
        summed: dict[tuple[str, int, int, str | None], list[Any]] = {}
        keys_of = builder.keys_of

        def sum_into(
            start: int,
            isp: str,
            labels: Labels,
            reply: str | None,
            n: int,
            t: float,
            first: tuple[Classification, int | None, str | None, str],
        ) -> None:
            """Add a group to the sums of its keys; ``first``: (classification, code,
            enhanced, text) of the first group of a sum."""
            cid = id(first[0])
            for key in keys_of((isp, *dims(labels))):
                into = summed.get((key, start, cid, reply))
                if into is None:
                    summed[(key, start, cid, reply)] = [n, t, *first]
                else:
                    into[0] += n
                    if t > into[1]:
                        into[1] = t

        for done, (gk, (n, t, classification, text)) in enumerate(groups.items(), 1):
            if not done % step:
                yield
            start, isp, labels, _, code, enhanced, reply, fmt = gk
            events[(fmt, outcome_names[classification.outcome], isp)] += n
            if classification.bounce_type is soft_type:
                soft[isp] += n
            if reply is None or (start, isp, classification.category) not in crowded:
                sum_into(start, isp, labels, reply, n, t, (classification, code, enhanced, text))
        delivered = self._engine.delivered
        outcome, plain = outcome_names[delivered.outcome], (delivered, None, None, "")
        done = 0
        for number, bucket in self.delivered.items():
            start = number * self.bucket_seconds
            for (isp, labels, fmt), (n, t) in bucket.items():
                done += 1
                if not done % step:
                    yield
                events[(fmt, outcome, isp)] += n
                sum_into(start, isp, labels, None, n, t, plain)
        for done, ((key, start, _, reply), (n, t, c, code, enhanced, text)) in enumerate(
            summed.items(), 1
        ):
            if not done % step:
                yield
            builder.add_to_key(key, t, start, c, code, enhanced, text, reply, n)
        if crowded:
            for done, (gk, text, t) in enumerate(replies, 1):
                if not done % step:
                    yield
                classification = groups[gk][2]
                if (gk[0], gk[1], classification.category) in crowded:
                    add(gk, classification, text, t, 1)
        for t, isp, labels, event in self.feedback:
            complaint = event.is_complaint
            events[(event.source_format, "complaint" if complaint else "feedback", isp)] += 1
            source_ip, sending_domain, tenant = dims(labels)
            builder.add_feedback(
                t,
                isp,
                complaint,
                source_ip=source_ip,
                sending_domain=sending_domain,
                tenant=tenant,
                campaign=event.campaign,
                sources=(event.sending_domain, event.source_ip),
            )
        self.groups = {}
        self.delivered = {}
        self.replies = []
        self.feedback = []

    def _crowded(self, capacity: int) -> set[tuple[int, str, Category]]:
        """The (bucket, ISP, category) summaries that could overflow: more distinct replies
        than ``capacity``. The ISP key sees the most of any key of its ISP, so the summaries
        of every other key of that cell fit whenever this one does; the summaries are
        independent of each other, so only a crowded one needs its replies in order."""
        if len(self.groups) <= capacity:
            return set()
        seen: dict[tuple[int, str, Category], set[str]] = {}
        for gk, group in self.groups.items():
            reply = gk[6]
            if reply is not None:
                seen.setdefault((gk[0], gk[1], group[2].category), set()).add(reply)
        return {cell for cell, distinct in seen.items() if len(distinct) > capacity}


def read_messages(
    engine: Engine,
    builder: PartialBuilder,
    messages: Sequence[tuple[bytes, int]],
    source: str,
    tally: BatchTally,
    groups: EventGroups,
    inputs: InputProgress | None = None,
    now: float = 0.0,
) -> list[Decoded]:
    """Decode consecutive messages (payload, offset) of input ``source`` and count their
    events in ``groups`` (the batch's partials once fed to ``builder``, see
    ``EventGroups``); what each message held, its refused events among its errors.

    ``inputs`` first refuses the events whose time cannot be right (``InputProgress.admit``,
    ``now`` the wall clock). The messages are admitted and counted together: a message of
    one event would otherwise pay more for the calls than for its event.
    """
    fmt = engine.input_format
    decoded = [decode_message(payload, fmt) for payload, _ in messages]
    if not decoded:
        return decoded
    events = [event for d in decoded for event in d.events]
    times = event_times(events)
    if inputs is not None:
        admitted, times = inputs.admit_all(decoded, source, now, times)
        if admitted is not decoded:
            decoded = admitted
            events = [event for d in decoded for event in d.events]
    if events:
        groups.count(events, source, tally, times)
    feedback = [event for d in decoded if d.feedback for event in d.feedback]
    if feedback:
        groups.count_feedback(feedback, source, tally)
    builder.note_offset(source, messages[0][1])
    builder.note_offset(source, messages[-1][1])
    tally.skipped += sum(d.skipped for d in decoded)
    return decoded


@dataclass
class Chunk:
    """What ingest sends at a flush: partials by key, the progress record, the tally."""

    partials: dict[str, Partial]
    progress: dict[str, Any]
    tally: BatchTally
    #: Hygiene observations by recipients partition, each in event order.
    recipients: dict[int, Bundle] = field(default_factory=dict)


class IngestBatch:
    """Reads the messages of one ingest batch into chunks of partials.

    A chunk is flushed whenever it spans more than ``MAX_FLUSH_SPAN_SECONDS`` of event time
    (checked after each call of ``add_messages``), and at the end of the batch. Its progress
    record is that of ``inputs`` at the flush: every input partition the reader owns, of
    ``partitions`` in all.
    """

    def __init__(
        self,
        engine: Engine,
        inputs: InputProgress | None = None,
        partitions: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._engine = engine
        self._inputs = inputs or InputProgress(engine.time_bounds)
        self._partitions = partitions
        self._clock = clock
        self._builder = engine.builder()
        self._observer = engine.observer()
        self._groups = EventGroups(engine, self._observer)
        self._tally = BatchTally()

    def read(self, payload: bytes, source: str, offset: int) -> tuple[Decoded, Chunk | None]:
        """``add`` one message, and the chunk flushed if it made the chunk due."""
        decoded = self.add(payload, source, offset)
        return decoded, self.flush() if self.due() else None

    def add(self, payload: bytes, source: str, offset: int) -> Decoded:
        """Read one message into the open chunk."""
        [decoded] = self.add_messages([(payload, offset)], source)
        return decoded

    def add_messages(self, messages: Sequence[tuple[bytes, int]], source: str) -> list[Decoded]:
        """Read consecutive messages (payload, offset) of ``source`` into the open chunk
        (``read_messages``)."""
        return read_messages(
            self._engine,
            self._builder,
            messages,
            source,
            self._tally,
            self._groups,
            self._inputs,
            self._clock(),
        )

    def due(self) -> bool:
        """Whether the open chunk spans enough event time to be flushed now."""
        return self._tally.span() > MAX_FLUSH_SPAN_SECONDS

    def flush(self) -> Chunk:
        *_, chunk = self.flushing()
        assert chunk is not None, "flushing ends with the chunk"
        return chunk

    def flushing(self, step: int = FEED_STEP_GROUPS) -> Iterator[Chunk | None]:
        """``flush`` in steps of ``step`` groups (``EventGroups.feeding``): None after each,
        the chunk last."""
        tally, self._tally = self._tally, BatchTally()
        yield from self._groups.feeding(self._builder, tally, step)
        progress = self._inputs.record(self._clock(), self._partitions)
        recipients = self._observer.drain() if self._observer is not None else {}
        yield Chunk(self._builder.drain(), progress, tally, recipients)
