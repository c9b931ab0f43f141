"""Topics, tables and agents of the worker, wired around one Faust app.

Data flow (see DESIGN.md): the ingest agent reads input messages in batches, decodes and
validates them, dead-letters what it cannot read, and sends one partial count per key and
batch to the partials topic, keyed by that key. The aggregate agent merges partials into
a changelog-backed table keyed the same way. Input offsets are acknowledged only after the
batch's partials and dead letters are acknowledged by the broker, so a crash loses nothing;
a partial re-sent after a crash is recognised by its offset ranges and merged once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from delivery.adapters import decode_message
from schemas.settings import Settings
from streams.app import create_app
from streams.deadletter import dead_letter
from streams.health import install_health_views, readiness
from streams.metrics import WorkerMetrics
from streams.partials import OffsetRanges, advance, already_merged, sources_from_json

log = logging.getLogger(__name__)

#: Most events one ingest batch holds, and how long it waits to fill up.
BATCH_MAX = 2000
BATCH_WITHIN_SECONDS = 1.0


@dataclass
class Topology:
    app: faust.App
    settings: Settings
    metrics: WorkerMetrics
    input_topic: faust.TopicT
    dead_letter_topic: faust.TopicT
    partials_topic: faust.TopicT
    domain_counts: faust.types.TableT[str, dict[str, Any] | None]


def build(settings: Settings, **faust_overrides: Any) -> Topology:
    app = create_app(settings, **faust_overrides)
    metrics = WorkerMetrics()
    partitions = settings.topic_partitions
    input_topic = app.topic(
        settings.topic_input, key_serializer="raw", value_serializer="raw", partitions=None
    )
    dead_letter_topic = app.topic(
        settings.topic_dead_letter, key_serializer="raw", value_serializer="raw"
    )
    partials_topic = app.topic(
        settings.topic_partials,
        key_type=str,
        key_serializer="raw",
        value_serializer="json",
        partitions=partitions,
    )
    domain_counts = app.Table(
        "recipient-domain-counts",
        default=None,
        partitions=partitions,
        key_type=str,
        help="Valid delivery events per recipient domain, with the merged input offsets",
    )
    topology = Topology(
        app=app,
        settings=settings,
        metrics=metrics,
        input_topic=input_topic,
        dead_letter_topic=dead_letter_topic,
        partials_topic=partials_topic,
        domain_counts=domain_counts,
    )
    _install_agents(topology)
    install_health_views(app)
    _install_metrics_view(topology)
    return topology


def _install_agents(t: Topology) -> None:
    app, settings, metrics = t.app, t.settings, t.metrics
    input_format = settings.input_format

    @app.agent(t.input_topic, name="ingest")
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        # take_events is on Stream, not on the StreamT protocol the agent is typed with.
        batches = cast(faust.Stream[bytes], stream).take_events(
            BATCH_MAX, within=BATCH_WITHIN_SECONDS
        )
        async for batch in batches:
            per_domain: Counter[str] = Counter()
            offsets = OffsetRanges()
            pending: list[Any] = []
            for event in batch:
                message = event.message
                offsets.add(message.partition, message.offset)
                metrics.messages_in.inc()
                # A null value (tombstone) reads as empty bytes and is dead-lettered.
                raw = event.value if isinstance(event.value, bytes) else b""
                decoded = decode_message(raw, input_format)
                for delivery in decoded.events:
                    per_domain[delivery.recipient_domain] += 1
                if decoded.skipped:
                    metrics.events_skipped.inc(decoded.skipped)
                if decoded.errors:
                    for error in decoded.errors:
                        metrics.invalid_events.labels(error.field or "").inc()
                    record = dead_letter(
                        key=message.key,
                        value=raw,
                        errors=decoded.errors,
                        counted=len(decoded.events),
                        topic=message.topic,
                        partition=message.partition,
                        offset=message.offset,
                    )
                    pending.append(
                        await t.dead_letter_topic.send(
                            key=record.key, value=record.value, headers=record.headers
                        )
                    )
                    metrics.dead_lettered.inc()
            sources = offsets.to_json()
            for domain, count in per_domain.items():
                pending.append(
                    await t.partials_topic.send(
                        key=domain, value={"count": count, "sources": sources}
                    )
                )
            metrics.partials_sent.inc(len(per_domain))
            # The batch is acknowledged when this iteration ends: only after the broker
            # has every partial and dead letter it produced.
            await asyncio.gather(*pending)

    @app.agent(t.partials_topic, name="aggregate")
    async def aggregate(stream: faust.StreamT[dict[str, Any]]) -> None:
        async for key, partial in stream.items():
            sources = sources_from_json(partial["sources"])
            current = t.domain_counts.get(key) or {"count": 0, "merged": {}}
            if already_merged(sources, current["merged"]):
                metrics.partials_duplicate.inc()
                continue
            t.domain_counts[key] = {
                "count": current["count"] + int(partial["count"]),
                "merged": advance(sources, current["merged"]),
            }


def _install_metrics_view(t: Topology) -> None:
    @t.app.page("/metrics")
    async def metrics_view(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        t.metrics.ready.set(1 if readiness(t.app)[0] else 0)
        # aiohttp refuses a charset inside content_type=; a header may carry it.
        return web.bytes(
            generate_latest(t.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    @t.app.page("/status")
    async def status_view(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        ready, checks = readiness(t.app)
        domains = {k: v["count"] for k, v in t.domain_counts.items() if v}
        return web.json({"ready": ready, "checks": checks, "recipient_domains": domains})
