"""Topics, tables and agents of the worker, wired around one Faust app.

Data flow (DESIGN.md):

- ``ingest`` reads input messages in batches as they are partitioned, decodes, classifies
  and resolves each event, dead-letters what it cannot read, and sends one partial count per
  aggregation key and batch to the partials topic, keyed by that key. Input offsets are
  acknowledged only after the broker has every partial and dead letter of the batch.
- ``aggregate`` merges partials into the ``buckets`` table (idempotently: a partial carries
  its input offset ranges). A timer sends a tick to each partials partition this worker
  owns; on a tick, ``aggregate`` evaluates the rules for the keys of that partition at every
  closed bucket boundary and publishes alert transitions, keyed by fingerprint; a progress
  record that moves a partition's watermark has its keys evaluated at once
  (``Aggregator.tick``).
- ``route`` re-keys transitions by rule (grouping across ISPs needs one rule in one place);
  ``notify`` runs the delivery pipeline and keeps its notification log in a table.

Table writes always happen inside an agent, in the partition of the message being handled:
Faust forbids them from timers, so timers only send ticks.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aggregation.aggregator import Aggregator
from aggregation.buckets import Partial, parse_key
from aggregation.ingest import Engine
from alerts.catchup import KeyState
from schemas.alert import AlertState, AlertTransition
from schemas.settings import Settings
from streams.app import create_app, owned
from streams.health import StreamWatch, install_health_views, readiness
from streams.ingest import IngestConsumer, fetch_position
from streams.metrics import WorkerMetrics
from streams.notify import PartitionNotifiers, install_notify
from streams.recipients import RecipientStage, install_recipients
from streams.silences import SilenceView
from streams.turns import Turns

log = logging.getLogger(__name__)


@dataclass
class Topology:
    app: faust.App
    settings: Settings
    engine: Engine
    metrics: WorkerMetrics
    partials_topic: faust.TopicT
    alerts_topic: faust.TopicT
    notify_topic: faust.TopicT
    buckets: faust.types.TableT[str, dict[str, Any] | None]
    alert_states: faust.types.TableT[str, dict[str, Any] | None]
    notify_state: faust.types.TableT[str, dict[str, Any] | None]
    silences: SilenceView = field(default_factory=SilenceView)
    aggregator: Aggregator | None = None
    indexed_generation: int = -1
    notifiers: PartitionNotifiers | None = None
    ingest: IngestConsumer | None = None
    recipients: RecipientStage | None = None


def build(settings: Settings, engine: Engine | None = None, **faust_overrides: Any) -> Topology:
    app = create_app(settings, **faust_overrides)
    partitions = settings.topic_partitions
    t = Topology(
        app=app,
        settings=settings,
        engine=engine or Engine.from_settings(settings),
        metrics=WorkerMetrics(),
        partials_topic=app.topic(
            settings.topic_partials,
            key_type=str,
            key_serializer="raw",
            value_serializer="json",
            partitions=partitions,
        ),
        alerts_topic=app.topic(
            settings.topic_alerts, key_type=str, key_serializer="raw", value_serializer="json"
        ),
        notify_topic=app.topic(
            f"{settings.app_id}-notify",
            key_type=str,
            key_serializer="raw",
            value_serializer="json",
            partitions=partitions,
            internal=True,
        ),
        buckets=app.Table(
            "buckets",
            default=None,
            partitions=partitions,
            key_type=str,
            help="Event-time buckets per aggregation key (KeyBuckets)",
        ),
        alert_states=app.Table(
            "alert-states",
            default=None,
            partitions=partitions,
            key_type=str,
            help="Alert records and evaluation progress per aggregation key",
        ),
        notify_state=app.Table(
            "notify-state",
            default=None,
            partitions=partitions,
            key_type=str,
            help="Notification log, open groups and outbox of the notifier",
        ),
    )
    _install_ingest(t)
    _install_aggregate(t)
    if t.engine.hygiene is not None:
        t.recipients = install_recipients(
            app,
            settings,
            t.engine.hygiene,
            t.metrics,
            hashed=t.engine.hygiene_hash_key is not None,
            engine=t.engine,
        )
    mx_cache = t.engine.mx_cache
    if mx_cache is not None:

        @app.on_before_shutdown.connect
        async def close_mx_lookups(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
            mx_cache.close()  # lookups still queued would answer no one

    t.notifiers = install_notify(
        app,
        settings,
        alerts_topic=t.alerts_topic,
        notify_topic=t.notify_topic,
        state=t.notify_state,
        silences=t.silences,
        metrics=t.metrics.delivery,
    )
    watch = StreamWatch(app)

    @app.timer(interval=5.0, name="stream-watch")  # type: ignore[untyped-decorator]
    async def stream_watch() -> None:
        watch.sample()
        if watch.stuck():
            log.error("no stream has moved for %ss while messages wait", watch.stuck_after)

    install_health_views(app, t.ingest, silences=t.silences, producer=watch)
    _install_views(t)
    return t


# ---- ingest -------------------------------------------------------------------------------


def _install_ingest(t: Topology) -> None:
    """Run the ingest batch consumer (``streams.ingest``) for as long as the app runs."""
    ingest = t.ingest = IngestConsumer(t.settings, t.engine, t.metrics)

    @t.app.task  # type: ignore[untyped-decorator]
    async def start_ingest() -> None:
        try:
            await ingest.start()
        except Exception as exc:
            # An ingest that never ran is as dead as one whose loop died: /healthz says so.
            ingest.failure = exc
            log.exception("the ingest consumer could not start")

    @t.app.on_before_shutdown.connect
    async def stop_ingest(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await ingest.stop()


# ---- aggregate and evaluate ----------------------------------------------------------------


def _install_aggregate(t: Topology) -> None:
    app, metrics = t.app, t.metrics
    aggregator = t.aggregator = Aggregator(t.engine, t.buckets, t.alert_states, hold_states=True)

    async def publish(transitions: list[AlertTransition]) -> None:
        """Publish ``transitions`` and wait for their acknowledgement; then write the states
        that made them (``Aggregator.write_held``)."""
        try:
            sent = [
                await t.alerts_topic.send(key=tr.fingerprint, value=tr.model_dump(mode="json"))
                for tr in transitions
            ]
            await asyncio.gather(*sent)
        except BaseException:
            # Not published: the states that made them are evaluated again from the table.
            aggregator.reindex()
            raise
        aggregator.write_held()
        for tr in transitions:
            metrics.transitions.labels(tr.rule, tr.kind.value).inc()

    # Catching up, a bundle of partials or a tick can evaluate many boundaries of many keys.
    turns = Turns()

    @app.agent(t.partials_topic, name="aggregate")
    async def aggregate(stream: faust.StreamT[dict[str, Any]]) -> None:
        async for event in stream.events():
            ensure_indexed(t)
            partition = event.message.partition
            value = event.value
            evaluations, duplicates = aggregator.evaluations, aggregator.duplicates
            reopened, repaired = aggregator.reopened, aggregator.repaired
            if "tick" in value:
                await publish(aggregator.tick(partition))
            else:
                # "partial": one partial per message, as versions before bundling sent them.
                items = value.get("partials") or ([value["partial"]] if "partial" in value else [])
                for item in items:
                    partial = Partial.from_dict(item)
                    transitions, late = aggregator.merge(partition, partial)
                    await publish(transitions)
                    if late:
                        metrics.late_events.labels(parse_key(partial.key)[0]).inc(late)
                    await turns.take()
                if "progress" in value:
                    aggregator.progress.update(partition, value["progress"])
                if "hygiene_progress" in value:
                    aggregator.hygiene_progress.update(partition, value["hygiene_progress"])
                if "progress" in value or "hygiene_progress" in value:
                    await publish(aggregator.tick(partition))
                # Counted once merged and judged: what a reader of the metric waits for.
                metrics.partials_merged.inc(len(items))
            metrics.evaluations.inc(aggregator.evaluations - evaluations)
            metrics.partials_duplicate.inc(aggregator.duplicates - duplicates)
            if aggregator.reopened > reopened:
                metrics.events_reopened.inc(aggregator.reopened - reopened)
            if aggregator.repaired > repaired:
                metrics.partials_repaired.inc(aggregator.repaired - repaired)

    @app.timer(  # type: ignore[untyped-decorator]
        interval=t.settings.evaluation_interval, name="evaluation-ticks"
    )
    async def evaluation_ticks() -> None:
        for tp in owned(app, t.settings.topic_partials):
            await t.partials_topic.send(key=None, value={"tick": 1}, partition=tp.partition)


def ensure_indexed(t: Topology) -> Aggregator:
    """The aggregator, its key index rebuilt if partitions moved since it was built."""
    aggregator = t.aggregator
    assert aggregator is not None, "build() installs the aggregator"
    if t.indexed_generation != t.app.rebalancing_count:
        # Partitions may have moved: index the keys the (recovered) table holds.
        aggregator.reindex()
        t.indexed_generation = t.app.rebalancing_count
    return aggregator


# ---- web ---------------------------------------------------------------------------------


def _install_views(t: Topology) -> None:
    @t.app.page("/metrics")
    async def metrics_view(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        _refresh_gauges(t)
        # aiohttp refuses a charset inside content_type=; a header may carry it.
        return web.bytes(
            generate_latest(t.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    @t.app.page("/status")
    async def status_view(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return web.json(status(t))


def _refresh_gauges(t: Topology) -> None:
    m = t.metrics
    m.ready.set(1 if readiness(t.app, t.ingest, silences=t.silences)[0] else 0)
    aggregator = ensure_indexed(t)
    mine = {tp.partition for tp in owned(t.app, t.settings.topic_partials)}
    m.unjudged.set(sum(1 for p in aggregator.unjudged() if p in mine))
    m.alerts_firing.clear()
    for (rule, severity), n in aggregator.firing_counts().items():
        m.alerts_firing.labels(rule, severity).set(n)
    if t.notifiers is not None:
        m.set_outbox(t.notifiers.outbox_sizes())
    lag = _consumer_lag(t.app)
    if t.ingest is not None:
        lag.update(t.ingest.lag())
    m.set_consumer_lag(lag)
    mx = t.engine.mx_cache
    if mx is not None:
        m.mx_lookups.labels("done").set(mx.lookups - mx.failures)
        m.mx_lookups.labels("failed").set(mx.failures)
        m.mx_lookups.labels("dropped").set(mx.dropped)
        m.mx_lookups.labels("pending").set(mx.pending())


def _consumer_lag(app: faust.App) -> dict[tuple[str, int], int]:
    """Lag of the partitions Faust's consumer owns, from the next offset it will fetch."""
    lag: dict[tuple[str, int], int] = {}
    consumer = app.consumer
    # Faust keeps no public position; the aiokafka consumer in its consumer thread does.
    inner = getattr(getattr(consumer, "_thread", None), "_consumer", None)
    if inner is None:
        return lag
    # Partitions delivered to agents only: the tables' changelogs are assigned too, but are
    # read only while recovering.
    delivered: dict[Any, int | None] = getattr(consumer, "_read_offset", {})
    for tp in app.assignor.assigned_actives():
        if delivered.get(tp) is None:
            continue
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # not fetched yet for this partition
            continue
        position = fetch_position(inner, tp)
        if highwater is not None and position is not None:
            lag[(tp.topic, tp.partition)] = max(0, highwater - position)
    return lag


def status(t: Topology) -> dict[str, Any]:
    """Per ISP, the metrics its rules read over their windows (``Evaluator.metric_status``:
    the one definition of each), and the active alerts this worker holds."""
    ready, checks = readiness(t.app, t.ingest, silences=t.silences)
    isps: dict[str, Any] = {}
    aggregator = ensure_indexed(t)
    longest = t.engine.config.retention_seconds - t.engine.config.bucket_seconds
    for key in aggregator.aggregation_keys():
        isp, group = parse_key(key)
        if group:
            continue
        kb = aggregator.load(key)
        end = kb.closed_end()
        if end is None:
            continue
        isps[isp] = {
            "name": t.engine.isp_name(isp),
            "window_end": datetime.fromtimestamp(end, UTC).isoformat(),
            # attempts over the longest span any rule reads
            "attempts": kb.window(end - longest, end).attempts,
            "attempts_window_seconds": longest,
            "metrics": t.engine.evaluator.metric_status(kb),
            "late_events": kb.late,
        }
    alerts = [
        {
            "rule": r.rule,
            "key": key,
            "severity": str(r.severity or ""),
            "fingerprint": r.fingerprint,
            "state": AlertState.FIRING.value,
        }
        for key, value in t.alert_states.items()
        for r in KeyState.from_dict(value).active()
    ]
    set_aside = t.notifiers.set_aside() if t.notifiers is not None else []
    # Suppressions this worker published since it started, by reason and ISP (list hygiene).
    suppressions: dict[str, dict[str, int]] = {}
    for metric in t.metrics.suppressions.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                reason, isp = sample.labels["reason"], sample.labels["isp"]
                suppressions.setdefault(reason, {})[isp] = int(sample.value)
    return {
        "ready": ready,
        "checks": checks,
        "isps": isps,
        "alerts": alerts,
        # Notifications an unexpected error set aside: an operator retries or drops them.
        "set_aside": set_aside,
        "suppressions": suppressions,
    }
