"""decode → classify → resolve: what every event goes through before it is counted.

``EventReader.read(payload)`` takes one Kafka message (a single event or a batch, in any
format ``delivery.adapters`` reads) and returns its events, each with its classification and
ISP, its feedback events (complaints and the rest) each with the ISP of the complainer, plus
the per-item errors and the number of other records skipped. ``read_line`` does the
same for one line of a file, keeping what later lines need (PowerMTA header, Postfix
senders). The ingest agent, ``replay`` and ``bouncewatch classify`` share it, so a number
means the same thing everywhere.

Speed: this runs for every event, so it adds nothing of its own beyond one tuple per event.
Repeated reply texts and domains are answered from the classifier's and the resolver's own
caches (see ``scripts/bench_classify.py`` for the figures). A second memo here was tried and
left out: 2xx texts often carry a per-message id, would fill it, and the classifier answers
them before any cache anyway.
"""

from __future__ import annotations

from datetime import UTC, tzinfo
from typing import NamedTuple

from delivery.adapters import AUTO, Decoded, EventError, StreamDecoder, decode_message
from delivery.classify import ReplyClassifier, default_classifier
from delivery.isp import IspResolver, default_resolver
from delivery.types import Classification, Isp
from schemas.event import DeliveryEvent, FeedbackEvent

__all__ = ["ClassifiedEvent", "ClassifiedFeedback", "EventReader", "Read"]


class ClassifiedEvent(NamedTuple):
    """One validated event with what its reply means and who received it."""

    event: DeliveryEvent
    classification: Classification
    isp: Isp


class ClassifiedFeedback(NamedTuple):
    """One validated feedback event (a complaint or not) with the complainer's ISP."""

    event: FeedbackEvent
    isp: Isp


class Read(NamedTuple):
    """What one message or line held, classified."""

    events: list[ClassifiedEvent]
    errors: list[EventError]
    skipped: int
    feedback: list[ClassifiedFeedback] = []


class EventReader:
    """Decodes, classifies and resolves; one per input stream (it remembers file state)."""

    def __init__(
        self,
        fmt: str = AUTO,
        classifier: ReplyClassifier | None = None,
        resolver: IspResolver | None = None,
        *,
        year: int | None = None,
        tz: tzinfo = UTC,
    ) -> None:
        self.fmt = fmt
        self.classifier = classifier or default_classifier()
        self.resolver = resolver or default_resolver()
        self._year = year
        self._tz = tz
        self._lines = StreamDecoder(fmt, year=year, tz=tz)

    def read(self, payload: bytes) -> Read:
        """One Kafka message: a single event or a batch. Never raises on bad input."""
        return self._classified(decode_message(payload, self.fmt, year=self._year, tz=self._tz))

    def read_line(self, line: str) -> Read:
        """One line of a file, read in order. Never raises on bad input."""
        return self._classified(self._lines.feed_line(line))

    def event(self, event: DeliveryEvent) -> ClassifiedEvent:
        """Classify and resolve one event that is already validated."""
        reply = event.reply
        return ClassifiedEvent(
            event,
            self.classifier.classify(reply.code, reply.enhanced, reply.text, event.status),
            self.resolver.resolve(event.recipient_domain, event.mx_host),
        )

    def _classified(self, decoded: Decoded) -> Read:
        classify = self.classifier.classify
        resolve = self.resolver.resolve
        # inlined rather than calling self.event(): this loop is the hot path
        events = [
            ClassifiedEvent(
                event,
                classify(event.reply.code, event.reply.enhanced, event.reply.text, event.status),
                resolve(event.recipient_domain, event.mx_host),
            )
            for event in decoded.events
        ]
        feedback = [
            ClassifiedFeedback(f, resolve(f.recipient_domain, f.mx_host)) for f in decoded.feedback
        ]
        return Read(events, decoded.errors, decoded.skipped, feedback)
