"""Prometheus metrics of the worker, in a registry of its own (tests run several apps)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.messages_in = Counter(
            "bouncewatch_messages_total", "Kafka messages read from the input topic", registry=r
        )
        self.events_in = Counter(
            "bouncewatch_events_total",
            "Delivery events read, by input format, outcome and ISP",
            ["format", "outcome", "isp"],
            registry=r,
        )
        self.events_skipped = Counter(
            "bouncewatch_events_skipped_total",
            "Records that are not delivery attempts (opens, clicks, receptions)",
            registry=r,
        )
        self.dead_lettered = Counter(
            "bouncewatch_dead_lettered_total",
            "Input messages sent to the dead-letter topic",
            registry=r,
        )
        self.invalid_events = Counter(
            "bouncewatch_invalid_events_total",
            "Events that failed decoding or validation, by the field named in the error",
            ["field"],
            registry=r,
        )
        self.late_events = Counter(
            "bouncewatch_late_events_total",
            "Events older than the allowed lateness: counted here, not in any bucket",
            ["isp"],
            registry=r,
        )
        self.partials_sent = Counter(
            "bouncewatch_partials_sent_total", "Partial-count messages sent", registry=r
        )
        self.partials_duplicate = Counter(
            "bouncewatch_partials_duplicate_total",
            "Partials already merged (re-sent after a crash) and skipped",
            registry=r,
        )
        self.ready = Gauge(
            "bouncewatch_ready", "1 when the worker is ready (joined, recovered)", registry=r
        )
