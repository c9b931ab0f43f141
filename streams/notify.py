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

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import faust
from aiokafka import AIOKafkaConsumer

from alerts.pipeline import Notifier
from alerts.receivers import build_senders
from alerts.routing import resolve_config
from schemas.alert import AlertTransition

if TYPE_CHECKING:
    from streams.topology import Topology

log = logging.getLogger(__name__)

#: How often the notifier's timers (group_wait, retries, silence expiry) are driven.
NOTIFY_TICK_SECONDS = 2.0


def install_notify(t: Topology) -> None:
    from streams.topology import owned

    app, settings = t.app, t.settings
    config = resolve_config(settings, settings.notify_file)

    def notifier() -> Notifier:
        if t.notifier is None or t.notifier_generation != app.rebalancing_count:
            # Partitions may have moved: start from what the (recovered) table holds now.
            fresh = Notifier(config, build_senders(config, settings), silences=t.silences)
            fresh.restore((k, v) for k, v in t.notify_state.items())
            t.notifier, t.notifier_generation = fresh, app.rebalancing_count
        return t.notifier

    def save(n: Notifier) -> None:
        for key, value in n.take_changes().items():
            if value is None:
                t.notify_state.pop(key, None)
            else:
                t.notify_state[key] = value

    @app.agent(t.alerts_topic, name="route")
    async def route(stream: faust.StreamT[dict[str, Any]]) -> None:
        async for value in stream:
            await t.notify_topic.send(key=str(value["rule"]), value=value)

    @app.agent(t.notify_topic, name="notify")
    async def notify(stream: faust.StreamT[dict[str, Any]]) -> None:
        async for value in stream:
            n = notifier()
            now = datetime.now(UTC)
            if "tick" in value:
                await n.tick(now)
            else:
                await n.process(AlertTransition.model_validate(value), now)
            save(n)

    @app.timer(interval=NOTIFY_TICK_SECONDS, name="notify-ticks")  # type: ignore[untyped-decorator]
    async def notify_ticks() -> None:
        for tp in owned(app, t.notify_topic.get_topic_name()):
            await t.notify_topic.send(key=None, value={"tick": 1}, partition=tp.partition)

    _install_silences(t)


def _install_silences(t: Topology) -> None:
    settings = t.settings

    @t.app.task  # type: ignore[untyped-decorator]
    async def follow_silences() -> None:
        from bouncewatch.kafka_client import aiokafka_config

        consumer = AIOKafkaConsumer(**aiokafka_config(settings), enable_auto_commit=False)
        try:
            await t.silences.follow(consumer, settings.topic_silences)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("cannot read silences from %s", settings.topic_silences)
