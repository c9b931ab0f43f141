"""``bouncewatch replay EVENTS --suppressions OUT.jsonl``: the suppression list a file of
events makes, record for record what the worker publishes on the suppressions topic.

The file is read in its order, as one input partition delivers it (events are not sorted by
time here: the live worker applies observations in the order it reads them). Each event
goes through the worker's steps: the time check (``InputProgress``), classification, the
ISP, ``hygiene.observe.Observer`` and ``hygiene.core``. Each output line is one record of
the topic: ``{"key": ..., "value": {...}}``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from aggregation.ingest import Engine
from aggregation.watermark import InputProgress
from delivery.adapters import StreamDecoder
from hygiene.core import GraduationRule, HygieneRules, Recipients
from hygiene.observe import Observer


def suppressions(
    lines: Iterable[str], fmt: str, engine: Engine, source: str = "replay"
) -> Iterator[dict[str, Any]]:
    """The suppressions topic's records for the events of ``lines``, in order."""
    rules = engine.hygiene or HygieneRules(default=GraduationRule())
    observer = Observer(rules, engine.recipient_partitions, engine.hygiene_hash_key)
    recipients = Recipients(rules, hashed=engine.hygiene_hash_key is not None)
    inputs = InputProgress(engine.time_bounds)
    decoder = StreamDecoder(fmt)
    now = time.time()
    classify = engine.classifier.classify
    for line in lines:
        decoded, _ = inputs.admit(decoder.feed_line(line), source, now)
        for event in decoded.events:
            t = event.event_time.timestamp()
            reply = event.reply
            c = classify(reply.code, reply.enhanced, reply.text, event.status)
            isp = engine.isp_key(event)
            domain = event.recipient.rpartition("@")[2]
            observer.attempt(event.recipient, domain, t, isp, c, reply.text)
        for feedback in decoded.feedback:
            if feedback.is_complaint and "@" in feedback.recipient:
                t = feedback.event_time.timestamp()
                isp = engine.isp_key(feedback)
                observer.complaint(feedback.recipient, feedback.recipient_domain, t, isp)
        if observer.observations:
            for decision in recipients.feed(observer.observations):
                yield {"key": decision.key, "value": decision.record}
            observer.observations = []
            observer.drain()
