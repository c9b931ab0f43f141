"""The worker's list hygiene steps offline: the suppressions a file of events makes, record
for record what the worker publishes on the suppressions topic.

``bouncewatch replay`` reads the file in its order, as one input partition delivers it
(events are not sorted by time here: the live worker applies observations in the order it
reads them), through the time check, and hands each message's events to ``Twin``: the
classification, the ISP, ``hygiene.observe.Observer`` and ``hygiene.core``. Its decisions
are the records of ``replay --suppressions OUT.jsonl`` and the new suppressions the rules
count (``suppression_rate``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aggregation.buckets import event_seconds
from aggregation.ingest import Engine
from delivery.adapters import Decoded
from hygiene.bundles import sequence
from hygiene.core import Decision, GraduationRule, HygieneRules, Recipients
from hygiene.observe import Observer


class Twin:
    """The worker's hygiene steps over decoded events, in the order they are read."""

    def __init__(self, engine: Engine, rules: HygieneRules | None = None) -> None:
        rules = rules or engine.hygiene or HygieneRules(default=GraduationRule())
        self._engine = engine
        # One partition: the observations then come back in the order of their events (the
        # worker keeps each address's order, in the partition of the address).
        self._observer = Observer(rules, 1, engine.hygiene_hash_key)
        self._recipients = Recipients(rules, hashed=engine.hygiene_hash_key is not None)

    def feed(self, decoded: Decoded) -> list[tuple[Decision, Sequence[Any]]]:
        """The decisions ``decoded`` (admitted already) makes, each with its observation."""
        engine, observer = self._engine, self._observer
        classify = engine.classifier.classify
        for event in decoded.events:
            reply = event.reply
            c = classify(reply.code, reply.enhanced, reply.text, event.status)
            domain = event.recipient.rpartition("@")[2]
            labels = (event.source_ip, event.sending_domain, event.tenant)
            t = event_seconds(event.event_time)
            observer.attempt(
                event.recipient, domain, t, engine.isp_key(event), c, reply.text, labels
            )
        for feedback in decoded.feedback:
            if feedback.is_complaint and "@" in feedback.recipient:
                labels = (feedback.source_ip, feedback.sending_domain, feedback.tenant)
                observer.complaint(
                    feedback.recipient,
                    feedback.recipient_domain,
                    event_seconds(feedback.event_time),
                    engine.isp_key(feedback),
                    labels,
                )
        bundle = observer.drain().get(0)
        if bundle is None:
            return []
        by: list[Sequence[Any]] = []
        decisions = self._recipients.feed((obs for _, obs in sequence(bundle)), by)
        return list(zip(decisions, by, strict=True))
