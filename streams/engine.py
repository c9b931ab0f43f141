"""The domain core as the agents use it: read a message, evaluate a key at a tick.

Everything here is plain Python over the core (adapters, classifier, resolver, buckets,
evaluator); the Faust agents in ``streams.topology`` only move its inputs and outputs
between topics and tables.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aggregation.buckets import AggregationConfig, KeyBuckets, PartialBuilder
from alerts.evaluate import Evaluator
from alerts.rules import RuleSet, load_default_rules, load_rules
from alerts.state import AlertStateRecord
from delivery.adapters import Decoded, decode_message
from delivery.classify import ReplyClassifier, default_classifier
from delivery.isp import IspResolver, load_resolver
from delivery.types import Isp
from schemas.alert import AlertState, AlertTransition
from schemas.settings import Settings


@dataclass
class Engine:
    """The loaded knowledge and rules of one worker."""

    rules: RuleSet
    classifier: ReplyClassifier
    resolver: IspResolver
    input_format: str = "auto"
    config: AggregationConfig = field(init=False)
    evaluator: Evaluator = field(init=False)

    def __post_init__(self) -> None:
        self.config = self.rules.aggregation_config()
        self.evaluator = Evaluator(self.rules, self.isp_name)
        self._specs = self.rules.key_specs()

    @classmethod
    def from_settings(cls, settings: Settings) -> Engine:
        rules = load_rules(settings.rules_file) if settings.rules_file else load_default_rules()
        return cls(
            rules=rules,
            classifier=default_classifier(),
            resolver=load_resolver(None, unknown=settings.isp_unknown),
            input_format=settings.input_format,
        )

    def isp_name(self, key: str) -> str:
        isp = self.resolver.isps.get(key)
        return isp.name if isp is not None else key

    def builder(self) -> PartialBuilder:
        return PartialBuilder(self._specs, self.config.bucket_seconds, self.config.reply_capacity)


@dataclass
class BatchTally:
    """What one ingest batch saw, for the metrics (labels counted once per batch)."""

    events: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    skipped: int = 0


def read_message(
    engine: Engine,
    builder: PartialBuilder,
    payload: bytes,
    partition: str,
    offset: int,
    tally: BatchTally,
) -> Decoded:
    """Decode one Kafka message and add its events to the batch's partials."""
    decoded = decode_message(payload, engine.input_format)
    classify = engine.classifier.classify
    resolve = engine.resolver.resolve
    for event in decoded.events:
        reply = event.reply
        classification = classify(reply.code, reply.enhanced, reply.text, event.status)
        isp: Isp = resolve(event.recipient_domain, event.mx_host)
        builder.add(
            event.event_time,
            isp.key,
            classification,
            code=reply.code,
            enhanced=reply.enhanced,
            text=reply.text,
            source_ip=event.source_ip,
            sending_domain=event.sending_domain,
            tenant=event.tenant,
        )
        tally.events[(event.source_format, classification.outcome.value, isp.key)] += 1
    builder.note_offset(partition, offset)
    tally.skipped += decoded.skipped
    return decoded


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


def evaluate_through(
    engine: Engine, kb: KeyBuckets, state: KeyState, watermark: int
) -> list[AlertTransition]:
    """Evaluate ``kb`` at every bucket boundary up to ``watermark`` not evaluated yet.

    Boundaries are evaluated one by one, in order, exactly as the offline replay does, so a
    worker that was down or slow catches up with the same transitions. Evaluating again up to
    the same watermark yields nothing: ``state.next_eval`` has moved past it.
    """
    size = engine.config.bucket_seconds
    boundary = state.next_eval
    if boundary is None:
        if not kb.buckets:
            return []
        # Before a key's first bucket every window is empty: nothing to evaluate there.
        boundary = min(kb.buckets) + size
    transitions: list[AlertTransition] = []
    while boundary <= watermark:
        kb.advance(boundary)
        found, records = engine.evaluator.evaluate(kb, state.records, boundary)
        state.records = records
        transitions.extend(found)
        boundary += size
    state.next_eval = boundary
    return transitions
