"""Offline replay: feed events through the live core in event-time order, collect transitions.

Complaints and other feedback reports are observations too, fed to the builder's
``add_feedback`` as the ingest feeds them; so are the addresses list hygiene newly suppressed
(``suppression``, with hygiene on: ``hygiene.replay.Twin``), fed to ``add_suppression`` as
the worker's recipients stage feeds them.

The path is the live one, stage for stage: classify → resolve the ISP → ``PartialBuilder`` →
``KeyBuckets.merge`` → advance the watermark → ``Evaluator.evaluate`` at every bucket boundary
the watermark passes. The watermark is the largest event time read so far minus the
evaluation delay (``AggregationConfig.watermark_for``), shared by every key, as a worker's
would be; keys without traffic therefore still move on and their alerts resolve. Events come
in event-time order here, so none arrives after its bucket was evaluated and none is late:
the transitions are those of a live worker whose events all arrived within the evaluation
delay.

Events are sorted in memory first (a file is rarely in event-time order: MTAs log per queue).
Each is kept as a small tuple, a few hundred bytes, so a few million events fit in a few GB;
for more, split the file by time and replay the parts in order with one ``Replay``
(``feed`` / ``finish``) - the state carries over.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from aggregation.buckets import KeyBuckets, PartialBuilder, align_down, epoch_seconds
from alerts.catchup import KeyState, evaluate_through
from alerts.evaluate import Evaluator
from alerts.rules import RuleSet
from delivery.isp import default_resolver
from delivery.types import Classification, Isp
from schemas.alert import AlertTransition
from schemas.event import DeliveryEvent, FeedbackEvent
from schemas.vocabulary import BounceType, Category, Outcome, SourceStatus


class Classifier(Protocol):
    def classify(
        self, code: int | None, enhanced: str | None, text: str, status: SourceStatus | None
    ) -> Classification: ...


class Resolver(Protocol):
    def resolve(self, domain: str, mx_host: str | None) -> Isp: ...


class Observation(NamedTuple):
    """One classified event, as small as the aggregation needs it: a delivery attempt, or
    (``complaint`` not None) a feedback report, a complaint when true."""

    t: float
    isp: str
    classification: Classification
    code: int | None
    enhanced: str | None
    text: str
    source_ip: str | None
    sending_domain: str | None
    tenant: str | None
    complaint: bool | None = None
    campaign: str | None = None
    #: The reason of an address newly suppressed by the event at ``t`` (no attempt).
    suppression: str | None = None


@dataclass(slots=True)
class ReplayStats:
    events: int = 0
    late: int = 0
    evaluations: int = 0
    keys: int = 0
    first_event: float | None = None
    last_event: float | None = None


@dataclass(slots=True)
class ReplayResult:
    transitions: list[AlertTransition] = field(default_factory=list)
    stats: ReplayStats = field(default_factory=ReplayStats)


def observe(event: DeliveryEvent, classifier: Classifier, resolver: Resolver) -> Observation:
    reply = event.reply
    classification = classifier.classify(reply.code, reply.enhanced, reply.text, event.status)
    isp = resolver.resolve(event.recipient_domain, event.mx_host)
    return Observation(
        epoch_seconds(event.event_time),
        isp.key,
        classification,
        reply.code,
        reply.enhanced,
        reply.text,
        event.source_ip,
        event.sending_domain,
        event.tenant,
    )


#: The classification a feedback observation carries: it is no attempt, and nothing reads it.
FEEDBACK = Classification(Outcome.DELIVERED, BounceType.NONE, Category.DELIVERED, "feedback")


def observe_feedback(event: FeedbackEvent, resolver: Resolver) -> Observation:
    """A complaint or other feedback report, as the aggregation needs it."""
    return Observation(
        epoch_seconds(event.event_time),
        resolver.resolve(event.recipient_domain, event.mx_host).key,
        FEEDBACK,
        None,
        None,
        "",
        event.source_ip,
        event.sending_domain,
        event.tenant,
        event.is_complaint,
        event.campaign,
    )


class Replay:
    """The streaming core run over observations in event-time order."""

    def __init__(
        self,
        rules: RuleSet,
        isp_names: dict[str, str] | None = None,
        on_transition: Callable[[AlertTransition], None] | None = None,
    ) -> None:
        self.rules = rules
        self.config = rules.aggregation_config()
        self.isp_names: dict[str, str] = dict(isp_names or {})
        self.evaluator = Evaluator(rules, self._name)
        self.builder = PartialBuilder(
            rules.key_specs(), self.config.bucket_seconds, self.config.reply_capacity
        )
        self.table: dict[str, KeyBuckets] = {}
        self.states: dict[str, KeyState] = {}
        self.result = ReplayResult()
        self._on_transition = on_transition
        self._next_tick: int | None = None
        self._watermark: int | None = None
        #: Sleeping keys (``alerts.catchup.Sleep``) → the watermark they are due at.
        self._due: dict[str, int] = {}

    def _name(self, isp: str) -> str:
        return self.isp_names.get(isp) or default_resolver().name(isp)

    def feed(self, observations: Iterable[Observation]) -> None:
        """Process observations, which must come in event-time order."""
        stats = self.result.stats
        for obs in observations:
            if stats.last_event is not None and obs.t < stats.last_event:
                raise ValueError("replay observations must be in event-time order")
            if self._next_tick is None:
                # The first boundary worth evaluating is the end of the first event's bucket.
                size = self.config.bucket_seconds
                self._next_tick = align_down(math.floor(obs.t), size) + size
            self._advance_to(self.config.watermark_for(obs.t))
            if obs.suppression is not None:
                self.builder.add_suppression(
                    obs.t,
                    obs.isp,
                    obs.suppression,
                    source_ip=obs.source_ip,
                    sending_domain=obs.sending_domain,
                    tenant=obs.tenant,
                )
                continue  # its event is an observation of its own
            if obs.complaint is not None:
                self.builder.add_feedback(
                    obs.t,
                    obs.isp,
                    obs.complaint,
                    source_ip=obs.source_ip,
                    sending_domain=obs.sending_domain,
                    tenant=obs.tenant,
                    campaign=obs.campaign,
                )
            else:
                self.builder.add(
                    obs.t,
                    obs.isp,
                    obs.classification,
                    code=obs.code,
                    enhanced=obs.enhanced,
                    text=obs.text,
                    source_ip=obs.source_ip,
                    sending_domain=obs.sending_domain,
                    tenant=obs.tenant,
                )
            stats.events += 1
            if stats.first_event is None:
                stats.first_event = obs.t
            stats.last_event = obs.t

    def finish(self) -> ReplayResult:
        """Evaluate every bucket the events reached (a file is complete: nothing more comes)."""
        last = self.result.stats.last_event
        if last is not None:
            size = self.config.bucket_seconds
            self._advance_to(align_down(math.floor(last), size) + size)
        self._flush()
        self.result.stats.keys = len(self.table)
        return self.result

    def _advance_to(self, watermark: int) -> None:
        if self._watermark is not None and watermark <= self._watermark:
            return
        self._watermark = watermark
        if self._next_tick is None or self._next_tick > watermark:
            return
        self._flush()
        found: list[AlertTransition] = []
        due = self._due
        for key in sorted(k for k in self.table if due.get(k, watermark) <= watermark):
            state = self.states.get(key)
            if state is None:
                state = self.states[key] = KeyState()
            before = state.next_eval
            kb = self.table[key]
            found.extend(evaluate_through(self.evaluator, kb, state, watermark))
            if state.next_eval != before:
                self.result.stats.evaluations += 1
            if state.sleep is None:
                due.pop(key, None)
            else:
                due[key] = state.sleep.due(kb)
        size = self.config.bucket_seconds
        self._next_tick = align_down(watermark, size) + size
        # Keys are evaluated one after the other; announce in event-time order.
        found.sort(key=lambda t: t.event_time)
        for transition in found:
            self.result.transitions.append(transition)
            if self._on_transition is not None:
                self._on_transition(transition)

    def _flush(self) -> None:
        for key, partial in self.builder.drain().items():
            kb = self.table.get(key)
            if kb is None:
                kb = self.table[key] = KeyBuckets(key, self.config)
            self.result.stats.late += kb.merge(partial, self._merged_watermark())
            self._due.pop(key, None)  # counts wake a sleeping key

    def _merged_watermark(self) -> int | None:
        """The watermark every key has been evaluated through (none before the first)."""
        if self._next_tick is None:
            return None
        return self._next_tick - self.config.bucket_seconds


def observe_suppression(
    t: float, isp: str, reason: str, labels: tuple[str | None, str | None, str | None]
) -> Observation:
    """An address newly suppressed for ``reason`` by an event at ``t`` with these (source IP,
    sending domain, tenant) labels."""
    source_ip, sending_domain, tenant = labels
    return Observation(
        t, isp, FEEDBACK, None, None, "", source_ip, sending_domain, tenant, suppression=reason
    )


def replay(
    events: Iterable[DeliveryEvent | FeedbackEvent],
    rules: RuleSet,
    classifier: Classifier,
    resolver: Resolver,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Classify, sort by event time and replay ``events``; the transitions they produce."""
    observations: list[Observation] = []
    names: dict[str, str] = {}
    for event in events:
        if isinstance(event, FeedbackEvent):
            obs = observe_feedback(event, resolver)
        else:
            obs = observe(event, classifier, resolver)
        observations.append(obs)
        if obs.isp not in names:
            names[obs.isp] = resolver.resolve(event.recipient_domain, event.mx_host).name
        if progress is not None:
            progress(len(observations))
    observations.sort(key=lambda o: o.t)
    engine = Replay(rules, names)
    engine.feed(observations)
    return engine.finish()
