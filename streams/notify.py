"""The notifying side of the worker: alert transitions to Slack and email.

``route`` re-keys transitions by rule, since grouping gathers one rule's transitions across
ISPs and those are keyed (by fingerprint) onto different partitions of the alert topic;
``notify`` runs the delivery pipeline (alerts.pipeline) and keeps its notification log,
open groups and outbox in a changelog-backed table, so a transition consumed again after a
crash is not sent again. A timer drives group_wait, retries and silence expiry by sending a
tick to each notify partition this worker owns (Faust allows table writes only inside an
agent). Every worker reads all silences (streams.silences).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer

from alerts.pipeline import DeliveryMetrics, Notifier
from alerts.receivers import build_senders
from alerts.routing import resolve_config
from schemas.alert import AlertTransition
from schemas.settings import Settings
from streams.app import owned
from streams.kafka_client import aiokafka_config
from streams.silences import SilenceView

log = logging.getLogger(__name__)

#: How often the notifier's timers (group_wait, retries, silence expiry) are driven.
NOTIFY_TICK_SECONDS = 2.0


class PartitionNotifiers:
    """One notifier per notify partition, each keeping its state under its own prefix.

    Faust writes a table entry to the changelog partition of the message being handled. A
    notifier shared by all partitions would write one alert's records from a transition on
    one partition and from a tick on another, and a recovery replaying those partitions in
    some order could bring back a stale record and send again. Here every record of
    partition ``p``'s notifier is written while handling a message of ``p`` (its
    transitions and its ticks), so it lives in ``p``'s changelog and moves with ``p``.
    """

    def __init__(
        self,
        make: Callable[[], Notifier],
        table: MutableMapping[str, dict[str, Any] | None],
        metrics: DeliveryMetrics,
    ) -> None:
        self._make = make
        self._table = table
        self._by_partition: dict[int, Notifier] = {}
        self._generation = -1
        #: Waits until every table write made so far is in Kafka (the producer's flush).
        self.flush: Callable[[], Awaitable[None]] | None = None
        #: Shared by every partition's notifier, so the exported counters add up.
        self.metrics = metrics

    def get(self, partition: int, generation: int) -> Notifier:
        if generation != self._generation:
            # Partitions may have moved: start from what the (recovered) table holds now.
            self._by_partition.clear()
            self._generation = generation
        notifier = self._by_partition.get(partition)
        if notifier is None:
            notifier = self._by_partition[partition] = self._make()
            notifier.checkpoint = functools.partial(self.checkpoint, partition, notifier)
            prefix = f"{partition}|"
            notifier.restore(
                (key[len(prefix) :], value)
                for key, value in self._table.items()
                if key.startswith(prefix)
            )
        return notifier

    def save(self, partition: int, notifier: Notifier) -> None:
        for key, value in notifier.take_changes().items():
            name = f"{partition}|{key}"
            if value is None:
                self._table.pop(name, None)
            else:
                self._table[name] = value

    async def checkpoint(self, partition: int, notifier: Notifier) -> None:
        """Write what ``notifier`` changed and wait until Kafka has it.

        The notifier calls it after each delivered message: a receiver cannot join a Kafka
        transaction, so what a crash can repeat is what was delivered and not yet in the
        changelog. Recorded one message at a time, that is the one message in flight.
        """
        self.save(partition, notifier)
        if self.flush is not None:
            await self.flush()

    def set_aside(self) -> list[dict[str, Any]]:
        """Outbox items an unexpected error set aside, on the partitions this worker holds."""
        return [
            {"partition": partition, **item}
            for partition, notifier in sorted(self._by_partition.items())
            for item in notifier.set_aside()
        ]

    def outbox_sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for notifier in self._by_partition.values():
            for integration, n in notifier.outbox_sizes().items():
                sizes[integration] = sizes.get(integration, 0) + n
        return sizes


def install_notify(
    app: faust.App,
    settings: Settings,
    *,
    alerts_topic: faust.TopicT,
    notify_topic: faust.TopicT,
    state: MutableMapping[str, dict[str, Any] | None],
    silences: SilenceView,
    metrics: DeliveryMetrics,
) -> PartitionNotifiers:
    """The ``route`` and ``notify`` agents, their tick timer and the silence reader, on
    ``app``; the notifiers they drive, for /status and /metrics."""
    config = resolve_config(settings, settings.notify_file)
    senders = build_senders(config, settings)
    notifiers: PartitionNotifiers

    def make() -> Notifier:
        return Notifier(config, senders, silences=silences, metrics=notifiers.metrics)

    notifiers = PartitionNotifiers(make, state, metrics)

    async def flush() -> None:
        await app.producer.flush()

    notifiers.flush = flush

    @app.agent(alerts_topic, name="route")
    async def route(stream: faust.StreamT[dict[str, Any]]) -> None:
        async for value in stream:
            await notify_topic.send(key=str(value["rule"]), value=value)

    @app.agent(notify_topic, name="notify")
    async def notify(stream: faust.StreamT[dict[str, Any]]) -> None:
        async for event in stream.events():
            partition = event.message.partition
            notifier = notifiers.get(partition, app.rebalancing_count)
            now = datetime.now(UTC)
            value = event.value
            if "tick" in value:
                await notifier.tick(now)
            else:
                await notifier.process(AlertTransition.model_validate(value), now)
            notifiers.save(partition, notifier)

    @app.timer(interval=NOTIFY_TICK_SECONDS, name="notify-ticks")  # type: ignore[untyped-decorator]
    async def notify_ticks() -> None:
        for tp in owned(app, notify_topic.get_topic_name()):
            await notify_topic.send(key=None, value={"tick": 1}, partition=tp.partition)

    _install_silences(app, settings, silences)
    return notifiers


def _install_silences(app: faust.App, settings: Settings, silences: SilenceView) -> None:
    def new_consumer() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            **aiokafka_config(settings), enable_auto_commit=False, auto_offset_reset="earliest"
        )

    @app.task  # type: ignore[untyped-decorator]
    async def follow_silences() -> None:
        # Retries with backoff for as long as the worker runs; /readyz tells when it fails
        # for longer than silences_unhealthy_after.
        await silences.run(
            new_consumer,
            settings.topic_silences,
            unhealthy_after=settings.silences_unhealthy_after,
        )
