"""Prometheus metrics of the worker, in a registry of its own (tests run several apps).

The notifier's counters are defined where they are counted (``alerts.pipeline.DeliveryMetrics``)
and live in this same registry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from alerts.pipeline import DeliveryMetrics

# Every counter would also expose a ``_created`` timestamp per label set, doubling what a
# scrape renders (events by format, outcome and ISP alone are a few hundred series) for a
# value Prometheus ignores unless told otherwise.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Distinct ``field`` labels of ``bouncewatch_invalid_events``; later new ones count as "other".
INVALID_FIELD_LABELS = 100
#: A field name as the adapters and schemas spell one: dotted words, list indexes.
_WORD = r"[A-Za-z_][A-Za-z0-9_-]{0,39}"
_FIELD_NAME = re.compile(rf"{_WORD}(\.{_WORD}|\[[0-9]+\])*")
_INDEX = re.compile(r"\[[0-9]+\]")


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.messages_in = Counter(
            "bouncewatch_messages", "Kafka messages read from the input topic", registry=r
        )
        self.events_in = Counter(
            "bouncewatch_events",
            "Delivery events read, by input format, outcome and ISP",
            ["format", "outcome", "isp"],
            registry=r,
        )
        self.soft_bounces = Counter(
            "bouncewatch_soft_bounces",
            "Delivery events whose bounce type is soft (deferrals, and failures that are not "
            "hard), by ISP: the numerator of the rules' soft_bounce_rate",
            ["isp"],
            registry=r,
        )
        self.events_skipped = Counter(
            "bouncewatch_events_skipped",
            "Records that are not delivery attempts (opens, clicks, receptions)",
            registry=r,
        )
        self.dead_lettered = Counter(
            "bouncewatch_dead_lettered", "Input messages sent to the dead-letter topic", registry=r
        )
        self.invalid_events = Counter(
            "bouncewatch_invalid_events",
            "Events that failed decoding or validation, by the field named in the error",
            ["field"],
            registry=r,
        )
        self._invalid_fields: set[str] = set()
        self.late_events = Counter(
            "bouncewatch_late_events",
            "Attempts older than the allowed lateness: counted here, not in any bucket",
            ["isp"],
            registry=r,
        )
        self.events_reopened = Counter(
            "bouncewatch_events_after_evaluation",
            "Attempts counted into a bucket the rules had already judged (within the allowed "
            "lateness): alerts were decided without them. Steady growth means events arrive "
            "later than the rules' evaluation_delay allows for",
            registry=r,
        )
        self.events_refused = Counter(
            "bouncewatch_events_refused",
            "Events dead-lettered for their time: ahead of the clock or behind their input "
            "partition by more than BOUNCEWATCH_MAX_EVENT_AHEAD / _BEHIND",
            ["direction"],
            registry=r,
        )
        self.ingest_commit_seconds = Histogram(
            "bouncewatch_ingest_commit_seconds",
            "Time to send one ingest batch's partials and dead letters and commit its input "
            "offsets (one Kafka transaction)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.partials_sent = Counter(
            "bouncewatch_partials_sent", "Partial-count messages sent", registry=r
        )
        self.partials_merged = Counter(
            "bouncewatch_partials_merged",
            "Partials read by the aggregate agent (merged, or skipped as duplicates)",
            registry=r,
        )
        self.partials_duplicate = Counter(
            "bouncewatch_partials_duplicate",
            "Partials already merged (re-sent after a crash) and skipped",
            registry=r,
        )
        self.partials_repaired = Counter(
            "bouncewatch_partials_repaired",
            "Partials read again after a crash whose first merge's table writes were cut "
            "short: the buckets that missed them were merged (see Aggregator.merge)",
            registry=r,
        )
        self.evaluations = Counter(
            "bouncewatch_rule_evaluations",
            "Evaluations of a key's rules (one per key and evaluation pass)",
            registry=r,
        )
        self.transitions = Counter(
            "bouncewatch_alert_transitions",
            "Alert transitions published, by rule and kind",
            ["rule", "kind"],
            registry=r,
        )
        self.alerts_firing = Gauge(
            "bouncewatch_alerts_firing",
            "Alerts firing on this worker, by rule and severity",
            ["rule", "severity"],
            registry=r,
        )
        self.consumer_lag = Gauge(
            "bouncewatch_consumer_lag",
            "Messages behind the end of each owned partition",
            ["topic", "partition"],
            registry=r,
        )
        self.mx_lookups = Gauge(
            "bouncewatch_mx_lookups",
            "MX lookups of unknown recipient domains since start, by outcome (done: answered "
            "or no MX; failed: no usable answer; dropped: too many pending) and pending now",
            ["outcome"],
            registry=r,
        )
        self.ready = Gauge(
            "bouncewatch_ready", "1 when the worker is ready (joined, recovered)", registry=r
        )
        self.unjudged = Gauge(
            "bouncewatch_unjudged_partitions",
            "Owned partials partitions whose keys are not yet judged through the input's "
            "progress (0 once a backlog read to its end is judged in full)",
            registry=r,
        )
        self.suppressions = Counter(
            "bouncewatch_suppressions",
            "Addresses added to the suppression list (records published), by reason and ISP",
            ["reason", "isp"],
            registry=r,
        )
        self.recipient_observations = Counter(
            "bouncewatch_recipient_observations",
            "Hygiene observations read by the recipients agent, by kind (delivery, soft, hard, "
            "complaint, release) and whether they reached the table (`skipped`: a delivery to "
            "an address without state, answered by the in-memory filter)",
            ["kind", "result"],
            registry=r,
        )
        self.observations_sent = Counter(
            "bouncewatch_recipient_observations_sent",
            "Hygiene observations the ingest sent to the recipients topic",
            registry=r,
        )
        self.suppressions_republished = Counter(
            "bouncewatch_suppressions_recovered",
            "Suppression decisions found pending after a crash, by what the check of the "
            "suppressions topic found (`published`: already there; `sent`: sent now)",
            ["found"],
            registry=r,
        )
        #: The notifier's counters, counted by alerts.pipeline in this registry.
        self.delivery = DeliveryMetrics(r)
        self.outbox = Gauge(
            "bouncewatch_notification_outbox",
            "Notifications waiting for a retry, by integration",
            ["integration"],
            registry=r,
        )

    def invalid_field(self, name: str | None) -> str:
        """The ``field`` label for an error naming ``name``.

        The name comes from the input: an unknown key of a hostile or broken producer is
        named as it was sent, bytes and all. As a label it would carry those bytes into
        /metrics and add a series per key, without bound. So only names shaped like a field
        are kept, list indexes folded (``recipients[]``), and at most
        ``INVALID_FIELD_LABELS`` of them; anything else is "other" (the dead letter's
        headers still name it).
        """
        if not name:
            return ""
        label = _INDEX.sub("[]", name) if _FIELD_NAME.fullmatch(name) and len(name) <= 80 else ""
        if not label:
            return "other"
        if label not in self._invalid_fields:
            if len(self._invalid_fields) >= INVALID_FIELD_LABELS:
                return "other"
            self._invalid_fields.add(label)
        return label

    def set_outbox(self, sizes: Mapping[str, int]) -> None:
        self.outbox.clear()
        for integration, size in sizes.items():
            self.outbox.labels(integration).set(size)

    def set_consumer_lag(self, lag: Mapping[tuple[str, int], int]) -> None:
        self.consumer_lag.clear()
        for (topic, partition), value in lag.items():
            self.consumer_lag.labels(topic, str(partition)).set(value)
