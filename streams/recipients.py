"""The recipients agent: hygiene observations into the ``recipients`` table, decisions out to
the suppression list, each published exactly once across crashes.

The ingest sends each batch's observations to the recipients topic in the batch's
transaction, one message per partition (``hygiene.observe``), so an address always arrives
on one partition and its state lives in that partition of the table. The suppressions topic
has the same partitions and keys: a decision for an address goes to its partition there.

Exactly once (``hygiene.bundles``): a decision is recorded in the table entry first; the
agent waits until the table's writes are acknowledged, publishes the record and waits for
its acknowledgement, then clears the mark. The message's offset is committed only after all
of that. A worker killed in between reads the message again and meets the mark: it reads
its partition of the suppressions topic from shortly before the decision (by timestamp) for
a record of that key with that decision number, and publishes only if there is none.

Suppressions as a metric (``suppression_rate``): each message's decisions are counted in
partials for the aggregation keys of the events that made them, sent to the partials topic
at once, in the order of the messages, with the message's offset as their source: a message
read again sends the same counts under the same offset, merged once (``hygiene.bundles``);
the message is acknowledged only once they are delivered. Behind them goes the message's
progress record (the ingest's, ``streams.ingest.observation_bundles``) to every partials
partition, renamed for this recipients partition (``aggregation.watermark.relayed``): the
aggregation judges a bucket only once every recipients partition has counted what was
decided in it, so live and replayed alerts read the same counts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from aggregation.ingest import Engine
from aggregation.watermark import relayed
from hygiene.bundles import Pending, PresenceFilter, apply_bundle, decision_partials, published
from hygiene.core import HygieneRules
from hygiene.observe import Bundle
from schemas.settings import Settings
from streams.app import _ExactProducerBuffer
from streams.ingest import partials_partition
from streams.kafka_client import aiokafka_config
from streams.metrics import WorkerMetrics

log = logging.getLogger(__name__)

#: Header naming a suppression record's decision number (per key).
DECISION_HEADER = "bouncewatch-decision"
#: How far before a pending decision's wall-clock time the check starts reading.
CHECK_MARGIN_MS = 60_000
#: Publication jobs one partition may have in flight before the agent waits for the oldest.
MAX_JOBS_IN_FLIGHT = 64
#: Table writes that may wait in Faust's producer buffer before the agent applies a message.
#: Each holds its serialized key and value (about 9 KiB with orjson 3.13): without this bound
#: an agent faster than the producer grew the buffer with every address written (issue 14,
#: 45,000 waiting writes and 1.2 GiB after 600,000 addresses). A thousand keep the sender
#: busy while the agent waits.
MAX_BUFFERED_WRITES = 1_000


class RecipientStage:
    """Applies recipients messages to the table and publishes the decisions."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        rules: HygieneRules,
        table: Any,
        metrics: WorkerMetrics,
        hashed: bool,
        engine: Engine,
    ) -> None:
        self.app = app
        self.settings = settings
        self.rules = rules
        #: Builds the partials the decisions are counted in (the aggregation's keys).
        self.engine = engine
        self.table = table
        self.metrics = metrics
        self.hashed = hashed
        self.presence = PresenceFilter()
        self._generation = -1
        #: The changelog write of each key written while a message is applied (its future:
        #: done once Kafka acknowledged it), so that a decision waits for its own mark only.
        self._writes: dict[Any, Any] = {}
        #: Publication jobs per partition, in order, with their records.
        self._jobs: dict[int, list[tuple[asyncio.Future[None], list[Pending]]]] = {}
        #: Keys whose decision a job is publishing (not to be checked as left by a crash).
        self._in_flight: set[str] = set()
        send_changelog = table.send_changelog

        def recorded(partition: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> Any:
            future = send_changelog(partition, key, value, *args, **kwargs)
            self._writes[key] = future
            return future

        table.send_changelog = recorded

    def _refresh_presence(self) -> None:
        """After a rebalance, the filter holds the keys of the partitions owned now."""
        if self._generation == self.app.rebalancing_count:
            return
        self.presence.clear()
        n = 0
        for key in self.table:
            self.presence.add(key)
            n += 1
        self._generation = self.app.rebalancing_count
        log.info("recipients: %d addresses with state in the owned partitions", n)

    async def handle(self, event: Any) -> None:
        """Apply one recipients message; its decisions are published by a job of their own
        (``_publish``), and the message is acknowledged (its offset may be committed) only
        once they are. Messages without decisions are acknowledged at once."""
        partition = event.message.partition
        buffer = self.app.producer.buffer
        if isinstance(buffer, _ExactProducerBuffer):  # else a test's app: nothing to wait for
            await buffer.wait_at_most(MAX_BUFFERED_WRITES)
        if self._generation != self.app.rebalancing_count:
            # Partitions moved: let every job finish before the filter is rebuilt.
            await self._drain_jobs()
        self._refresh_presence()
        self._settle(partition)
        self._writes.clear()
        counts: dict[tuple[str, str], int] = {}
        counted: list[tuple[Sequence[Any], str]] = []
        pending = apply_bundle(
            self.table,
            event.message.offset,
            Bundle.from_message(event.value),
            self.rules,
            self.hashed,
            self.presence,
            counts,
            in_flight=self._in_flight,
            counted=counted,
        )
        for (kind, result), n in counts.items():
            self.metrics.recipient_observations.labels(kind, result).inc(n)
        # Sent now, before the next message's: the order the aggregation's dedup relies on.
        sends = await self._send_counts(
            partition, event.message.offset, counted, event.value.get("progress")
        )
        if not pending and not sends:
            event.ack()
            return
        # The marks must be in the changelog before anything is published: the job waits
        # for the acknowledgement of each fresh decision's write (not for every write in
        # Faust's buffer, which a flush would).
        marks = [self._writes[item.key] for item in pending if item.key in self._writes]
        for item in pending:
            self._in_flight.add(item.key)
        job = asyncio.ensure_future(self._publish(partition, pending, marks, event, sends))
        jobs = self._jobs.setdefault(partition, [])
        jobs.append((job, pending))
        if len(jobs) > MAX_JOBS_IN_FLIGHT:
            await asyncio.wait([jobs[0][0]])
            self._settle(partition)

    def _settle(self, partition: int) -> None:
        """Clear the marks of the finished jobs of ``partition`` (a table write: only from
        the agent, while it handles a message of that partition)."""
        jobs = self._jobs.get(partition)
        while jobs and jobs[0][0].done():
            job, pending = jobs.pop(0)
            for item in pending:
                self._in_flight.discard(item.key)
                if not job.cancelled() and job.exception() is None:
                    published(self.table, item.key)

    async def _drain_jobs(self) -> None:
        tasks = [job for jobs in self._jobs.values() for job, _ in jobs]
        if tasks:
            await asyncio.wait(tasks, timeout=60)
        self._jobs.clear()
        self._in_flight.clear()

    async def _send_counts(
        self,
        partition: int,
        offset: int,
        counted: list[tuple[Sequence[Any], str]],
        progress: dict[str, Any] | None,
    ) -> list[tuple[int, bytes, Any]]:
        """Send the partials counting ``counted`` (the decisions of the message at
        ``offset``), then ``progress`` relayed, to the partials partitions; (partition,
        value, future) of each message with counts, which the message's ack waits for."""
        n = self.settings.topic_partitions
        encoded: list[list[bytes]] = [[] for _ in range(n)]
        if counted:
            source = f"{self.settings.topic_recipients}:{partition}"
            partials = decision_partials(self.engine.builder(), counted, source, offset)
            for key, partial in partials.items():
                encoded[partials_partition(key, n)].append(orjson.dumps(partial.to_dict()))
        relay = b""
        if progress:
            relay = b',"hygiene_progress":' + orjson.dumps(relayed(progress, f"r{partition}", n))
        sends: list[tuple[int, bytes, Any]] = []
        for q, items in enumerate(encoded):
            if not items and not relay:
                continue
            value = b'{"partials":[' + b",".join(items) + b"]" + relay + b"}"
            future = await self._send_partials(q, value)
            if items:
                sends.append((q, value, future))
        return sends

    async def _send_partials(self, partition: int, value: bytes) -> Any:
        return await self.app.producer.send(
            self.settings.topic_partials,
            key=None,
            value=value,
            partition=partition,
            timestamp=None,
            headers=None,
        )

    async def _publish(
        self,
        partition: int,
        pending: list[Pending],
        marks: list[Any],
        event: Any,
        counts: Sequence[tuple[int, bytes, Any]] = (),
    ) -> None:
        """Publish ``pending`` once their marks are acknowledged, wait for the counts in
        ``counts``; then acknowledge ``event``. A failed send is retried (after a check for a
        record) until it succeeds: the message is not acknowledged before, so its offset is
        never committed past it."""
        for q, value, future in counts:
            delay = 1.0
            while True:
                try:
                    await future
                    break
                except Exception:
                    # Merged once whenever it lands (its offset); a later message's counts
                    # may land first, and the aggregation then takes these for a re-send.
                    log.exception("recipients: sending counts failed; retrying in %ss", delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    future = await self._send_partials(q, value)
        if marks:
            await asyncio.gather(*marks)
        delay = 1.0
        while True:
            try:
                sends: list[Any] = []
                sent: list[Pending] = []
                for item in pending:
                    if item.check and await self._already_published(partition, item):
                        self.metrics.suppressions_republished.labels("published").inc()
                        log.info(
                            "recipients: pending decision %s of a key found published",
                            item.number,
                        )
                        continue
                    if item.check:
                        self.metrics.suppressions_republished.labels("sent").inc()
                        log.info("recipients: pending decision %s of a key sent now", item.number)
                    sends.append(await self._send(partition, item))
                    sent.append(item)
                # All of the message's records in flight together.
                await asyncio.gather(*sends)
                break
            except Exception:
                log.exception("recipients: publishing suppressions failed; retrying in %ss", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                pending = [
                    Pending(i.key, i.record, True, i.since_ms) for i in pending
                ]  # some may have gone out
        for item in sent:
            record = item.record
            self.metrics.suppressions.labels(record["reason"], record["evidence"]["isp"]).inc()
        event.ack()

    async def _send(self, partition: int, item: Pending) -> Any:
        """Send ``item``'s record; the future of its acknowledgement."""
        record = item.record
        return await self.app.producer.send(
            self.settings.topic_suppressions,
            key=item.key.encode("utf-8", "surrogatepass"),
            value=orjson.dumps(record),
            partition=partition,
            timestamp=None,
            headers=[(DECISION_HEADER, str(record["decision"]).encode())],
        )

    async def _already_published(self, partition: int, item: Pending) -> bool:
        """Whether the suppressions topic holds ``item``'s record (same key and decision)."""
        key = item.key.encode("utf-8", "surrogatepass")
        number = str(item.record["decision"]).encode()
        tp = TopicPartition(self.settings.topic_suppressions, partition)
        config = aiokafka_config(self.settings)
        config["client_id"] = f"{self.settings.app_id}-suppression-check"
        consumer = AIOKafkaConsumer(**config, enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            found = await consumer.offsets_for_times({tp: max(0, item.since_ms - CHECK_MARGIN_MS)})
            start = found.get(tp)
            if start is None:
                return False
            consumer.seek(tp, start.offset)
            while await consumer.position(tp) < end:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    if record.key == key and (DECISION_HEADER, number) in list(record.headers):
                        return True
            return False
        finally:
            await consumer.stop()


def install_recipients(
    app: faust.App,
    settings: Settings,
    rules: HygieneRules,
    metrics: WorkerMetrics,
    hashed: bool,
    engine: Engine,
) -> RecipientStage:
    """The recipients topic, table and agent of ``app``."""
    partitions = settings.topic_partitions
    topic = app.topic(
        settings.topic_recipients,
        key_type=str,
        key_serializer="raw",
        value_serializer="json",
        partitions=partitions,
    )
    table = app.Table(
        "recipients",
        default=None,
        partitions=partitions,
        key_type=str,
        help="Per-recipient bounce history and suppression decisions (hygiene.core)",
    )
    stage = RecipientStage(app, settings, rules, table, metrics, hashed, engine)

    @app.agent(topic, name="recipients")
    async def recipients(stream: faust.StreamT[dict[str, Any]]) -> None:
        # Acknowledged by the stage: a message with decisions once they are published.
        async for event in stream.noack().events():  # type: ignore[attr-defined]
            await stage.handle(event)

    return stage
