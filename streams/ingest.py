"""The ingest stage: a batch consumer of the input topic, outside Faust's per-message path.

Faust spends hundreds of microseconds of Python on every message it delivers to an agent;
this stage is stateless and high-volume, so it reads the input with a plain aiokafka
consumer (its own consumer group, ``<app id>-ingest``) in the worker's process and event
loop. Per batch it decodes, validates, classifies and resolves every event
(``aggregation.ingest.IngestBatch``), and sends one partial per aggregation key, bundled per
partials partition, each bundle's last message carrying the progress record of every input
partition this consumer owns (``aggregation.watermark``).

Exactly once: a batch's partials, its dead letters and its input offsets go in one Kafka
transaction (``send_offsets_to_transaction``), and the aggregate agent reads the partials
``read_committed``. A crash before the commit aborts the transaction: the batch is read again
and nothing of it was counted. A broker without transactions (the embedded development
broker) gets the same sends, then an offset commit; a partial still carries its input
offset ranges, so one re-sent after a crash is merged once (said at start in the log).

A partition taken away in a rebalance first has its open batch sent and committed. The
consumer is ready once it holds its assignment; SIGTERM ends the batch in hand, commits it
and leaves (or, with static membership, keeps its place for the restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from aiokafka.structs import OffsetAndMetadata

from aggregation.ingest import Chunk, Engine, IngestBatch
from aggregation.watermark import InputProgress
from delivery.adapters import Decoded
from hygiene.observe import Bundle
from schemas.settings import Settings
from streams.deadletter import DeadLetter, dead_letter
from streams.kafka_client import aiokafka_config
from streams.metrics import WorkerMetrics
from streams.turns import Turns

log = logging.getLogger(__name__)

#: Bytes of encoded partials one partials message carries at most (a single larger partial
#: travels alone), well under Kafka's default 1 MB message limit.
BUNDLE_MAX_BYTES = 256 * 1024
#: How often a consumer with nothing to read still sends its progress records (idleness).
PROGRESS_EVERY_SECONDS = 1.0
#: Most messages one fetch hands over: a batch gathers several fetches, and only the fetch in
#: hand is held as messages (the batch keeps partials), whatever ``ingest_batch_messages``.
FETCH_RECORDS = 1000
#: A batch holding this many bytes of dead letters closes early: they wait for the commit.
DEAD_LETTER_BATCH_BYTES = 16 * 1024 * 1024
#: Longest a batch stays open while the consumer is behind (a backlog): long enough that a
#: key's partials are few per event, short enough that progress and metrics move on.
BACKLOG_BATCH_SECONDS = 10.0
#: A transaction still open this long is aborted by the broker (a producer that died).
TRANSACTION_TIMEOUT_MS = 30_000


@lru_cache(maxsize=1 << 16)
def partials_partition(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` as a message key, so each
    key's table entries stay in the partition that holds them."""
    return int((murmur2(key.encode()) & 0x7FFFFFFF) % partitions)


def bundles(items: list[bytes], progress: bytes | None) -> list[bytes]:
    """JSON ``{"partials": [...], "progress": {...}}`` messages for one partition, in order:
    the progress record goes in the last one only (see ``aggregation.watermark.Progress``)."""
    groups: list[list[bytes]] = []
    size = BUNDLE_MAX_BYTES
    for item in items:
        if size + len(item) > BUNDLE_MAX_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += len(item) + 1
    if not groups:
        if progress is None:
            return []
        groups.append([])
    out = [b'{"partials":[' + b",".join(group) + b"]}" for group in groups]
    if progress is not None:
        out[-1] = out[-1][:-1] + b',"progress":' + progress + b"}"
    return out


#: Bytes of JSON one recipients message carries at most (``Bundle.pieces``, an estimate that
#: errs high): a partition's deliveries of a flush travel in a few large messages, under
#: Kafka's default 1 MB message limit and the producer's request size. Each message's
#: decisions are counted in partials of their own, so fewer messages are fewer merges.
OBSERVATION_BYTES_PER_MESSAGE = 768 * 1024


def observation_bundles(
    bundle: Bundle | None, progress: dict[str, Any] | None = None
) -> list[bytes]:
    """The recipients messages (``Bundle.message``) of one partition's observations, in order;
    the last one carries the chunk's ``progress`` record (one message with no observations if
    need be), which the recipients stage passes on to the partials partitions once it has
    counted the suppressions before it (``streams.recipients``)."""
    pieces = bundle.pieces(OBSERVATION_BYTES_PER_MESSAGE) if bundle is not None else []
    out = [piece.message() for piece in pieces]
    if progress:
        if not out:
            out.append(Bundle().message())
        out[-1]["progress"] = progress
    return [orjson.dumps(message) for message in out]


#: Messages and payload bytes read in one step (``slices``): a few milliseconds of work, after
#: which the loop turns; single-event messages read together pay their calls once.
SLICE_MESSAGES = 256
SLICE_BYTES = 256 * 1024


def slices(messages: Sequence[tuple[bytes, int]]) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive runs of ``messages`` (payload, offset) of at most
    ``SLICE_MESSAGES`` messages and, unless one message alone is larger, ``SLICE_BYTES``
    bytes of payload."""
    start = size = 0
    for i, (payload, _) in enumerate(messages):
        n = len(payload)
        if i > start and (i - start >= SLICE_MESSAGES or size + n > SLICE_BYTES):
            yield start, i
            start, size = i, 0
        size += n
    if start < len(messages):
        yield start, len(messages)


def fetch_position(consumer: AIOKafkaConsumer, tp: Any) -> int | None:
    """The next offset ``consumer`` will fetch from ``tp``, or None before it has one.

    aiokafka's ``position()`` waits for a position; the state it reads answers at once. The
    position moves past transaction markers, which are never delivered: a lag computed from
    the last offset delivered would never reach zero on a transactional topic.
    """
    subscription = consumer._subscription.subscription
    if subscription is None or subscription.assignment is None:
        return None
    try:
        state = subscription.assignment.state_value(tp)
    except KeyError:
        return None
    if state is None or not state.has_valid_position:
        return None
    return int(state.position)


def source_of(tp: TopicPartition) -> str:
    return f"{tp.topic}:{tp.partition}"


@dataclass
class _Batch:
    """The open batch: its reader, what it sends, and the input offsets it covers."""

    reader: IngestBatch
    started: float
    chunks: list[Chunk] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    #: Next input offset to read per partition, once this batch is committed.
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    messages: int = 0
    #: Bytes of the dead letters held (the original messages, kept until the commit).
    dead_bytes: int = 0


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, ingest: IngestConsumer) -> None:
        self.ingest = ingest

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.ingest.partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.ingest.partitions_assigned(assigned)


class IngestConsumer:
    """Reads the input topic in batches and sends partials (module notes)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        metrics: WorkerMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.metrics = metrics
        self.clock = clock
        self.group_id = f"{settings.app_id}-ingest"
        self.inputs = InputProgress(engine.time_bounds, settings.ingest_idle_seconds)
        self.transactional = False
        self.assigned = False
        self.rebalancing = False
        self.failure: BaseException | None = None
        self._input_partitions = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._batch: _Batch | None = None
        self._lock = asyncio.Lock()
        #: Turns of the loop for the web port and the agents while a backlog is read and sent.
        self._turns = Turns()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_sent = 0.0
        self._refused_counted: dict[str, int] = {}

    # ---- life cycle

    async def start(self) -> None:
        common = aiokafka_config(self.settings)
        common["client_id"] = f"{self.settings.app_id}-ingest"
        self._producer = await self._start_producer(common)
        self._consumer = AIOKafkaConsumer(
            **common,
            group_id=self.group_id,
            group_instance_id=self.settings.instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=FETCH_RECORDS,
            request_timeout_ms=40_000,
            session_timeout_ms=30_000,
            heartbeat_interval_ms=3_000,
            # A batch is read in well under this; the loop also turns while it is.
            max_poll_interval_ms=300_000,
        )
        await self._consumer.start()
        partitions = self._consumer.partitions_for_topic(self.settings.topic_input)
        if not partitions:
            await self._consumer._client.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(self.settings.topic_input)
        self._input_partitions = len(partitions or ())
        if not self._input_partitions:
            raise RuntimeError(f"input topic {self.settings.topic_input!r} does not exist")
        self._consumer.subscribe([self.settings.topic_input], listener=_Listener(self))
        self._task = asyncio.create_task(self._run(), name="bouncewatch-ingest")
        self._task.add_done_callback(self._ended)

    async def _start_producer(self, common: dict[str, Any]) -> AIOKafkaProducer:
        base: dict[str, Any] = {
            **common,
            "acks": "all",
            "linger_ms": 5,
            "request_timeout_ms": 30_000,
            "max_request_size": 4 * BUNDLE_MAX_BYTES,
        }
        instance = self.settings.instance_id or uuid.uuid4().hex
        producer = AIOKafkaProducer(
            **base,
            enable_idempotence=True,
            transactional_id=f"{self.settings.app_id}-ingest-{instance}",
            transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
        )
        try:
            await asyncio.wait_for(producer.start(), timeout=30)
        except (KafkaError, TimeoutError, OSError) as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            log.warning(
                "the broker refused transactions (%s): ingest sends, then commits offsets; a "
                "batch re-read after a crash is merged once by its offset ranges",
                exc,
            )
            producer = AIOKafkaProducer(**base)
            await producer.start()
            return producer
        self.transactional = True
        log.info("ingest: exactly once through Kafka transactions (group %s)", self.group_id)
        return producer

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.failure = task.exception()
            log.error("ingest stopped: %r", self.failure, exc_info=self.failure)

    @property
    def alive(self) -> bool:
        """False once the batch loop has died: the liveness probe then fails."""
        return self.failure is None

    @property
    def ready(self) -> bool:
        return self.assigned and not self.rebalancing and self.alive

    async def stop(self) -> None:
        """End the batch in hand, commit it, leave the group."""
        self._stopping = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self._task), timeout=60)
            if not self._task.done():
                self._task.cancel()
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()

    # ---- rebalancing

    def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.inputs.assign((source_of(tp) for tp in assigned), self.clock())
        self.assigned = True
        self.rebalancing = False
        log.info("assigned %s", sorted(source_of(tp) for tp in assigned))

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.rebalancing = True
        async with self._lock:
            if self._batch is not None and self._batch.offsets:
                await self._commit(self._batch)
                self._batch = None
        self.inputs.revoke(source_of(tp) for tp in revoked)

    # ---- the batch loop

    def _new_batch(self) -> _Batch:
        reader = IngestBatch(self.engine, self.inputs, self._input_partitions, self.clock)
        return _Batch(reader, time.monotonic())

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        window = self.settings.ingest_batch_seconds
        limit = self.settings.ingest_batch_messages
        while not self._stopping:
            data = await consumer.getmany(timeout_ms=200, max_records=min(limit, FETCH_RECORDS))
            async with self._lock:
                batch = self._batch
                if batch is None:
                    batch = self._batch = self._new_batch()
                for tp, records in data.items():
                    await self._read(batch, tp, records)
                caught_up = self._note_caught_up(consumer)
                now = time.monotonic()
                # Live, a batch closes after the window; reading a backlog, it runs longer:
                # each batch sends one partial per key it saw, and the merges downstream, not
                # the events, are then what a worker spends its time on.
                age = now - batch.started
                due = (
                    batch.messages >= limit
                    or batch.dead_bytes > DEAD_LETTER_BATCH_BYTES
                    or (
                        batch.messages > 0
                        and age >= window
                        and (caught_up or age >= max(window, BACKLOG_BATCH_SECONDS))
                    )
                )
                heartbeat = not batch.messages and now - self._last_sent >= PROGRESS_EVERY_SECONDS
                if due or heartbeat or (self._stopping and batch.messages):
                    await self._commit(batch)
                    self._batch = None
        async with self._lock:
            if self._batch is not None and self._batch.messages:
                await self._commit(self._batch)
                self._batch = None

    async def _read(self, batch: _Batch, tp: TopicPartition, records: list[Any]) -> None:
        source = source_of(tp)
        reader = batch.reader
        turns = self._turns
        # A null value (tombstone) reads as empty bytes and is dead-lettered.
        messages = [(r.value if isinstance(r.value, bytes) else b"", r.offset) for r in records]
        for start, stop in slices(messages):
            for i, decoded in enumerate(reader.add_messages(messages[start:stop], source), start):
                if decoded.errors:
                    self._dead_letter(batch, tp, records[i], messages[i][0], decoded)
            if reader.due():
                batch.chunks.append(await self._flush(reader))
            await turns.take()
        if records:
            batch.offsets[tp] = records[-1].offset + 1
            batch.messages += len(records)

    def _dead_letter(
        self, batch: _Batch, tp: TopicPartition, record: Any, value: bytes, decoded: Decoded
    ) -> None:
        for error in decoded.errors:
            field_label = self.metrics.invalid_field(error.field)
            self.metrics.invalid_events.labels(field_label).inc()
        batch.dead_bytes += len(value)
        batch.dead.append(
            dead_letter(
                key=record.key,
                value=value,
                errors=decoded.errors,
                # Feedback (complaints) is counted too: the header says all of it.
                counted=len(decoded.events) + len(decoded.feedback),
                topic=tp.topic,
                partition=tp.partition,
                offset=record.offset,
            )
        )

    def _note_caught_up(self, consumer: AIOKafkaConsumer) -> bool:
        """Note which partitions are read to their end; whether all of them are."""
        every = True
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = self._position(consumer, tp)
            caught_up = highwater is not None and position is not None and position >= highwater
            self.inputs.set_caught_up(source_of(tp), caught_up)
            every = every and caught_up
        return every

    def _position(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
        batch = self._batch
        if batch is not None and tp in batch.offsets:
            return batch.offsets[tp]
        return fetch_position(consumer, tp)

    # ---- sending

    async def _commit(self, batch: _Batch) -> None:
        """Send the batch's partials, progress and dead letters; commit its input offsets."""
        producer, consumer = self._producer, self._consumer
        assert producer is not None and consumer is not None
        batch.chunks.append(await self._flush(batch.reader))
        started = time.perf_counter()
        offsets = {tp: OffsetAndMetadata(o, "") for tp, o in batch.offsets.items()}
        if self.transactional:
            async with producer.transaction():
                await self._send(producer, batch)
                if offsets:
                    await producer.send_offsets_to_transaction(offsets, self.group_id)
        else:
            await asyncio.gather(*await self._send(producer, batch))
            if offsets:
                await consumer.commit(offsets)
        self._last_sent = time.monotonic()
        self.metrics.ingest_commit_seconds.observe(time.perf_counter() - started)
        self._count(batch)

    async def _flush(self, reader: IngestBatch) -> Chunk:
        """The reader's open chunk, flushed with turns of the loop in between."""
        for chunk in reader.flushing():
            if chunk is not None:
                return chunk
            await self._turns.take()
        raise AssertionError("flushing ends with the chunk")

    async def _send(self, producer: AIOKafkaProducer, batch: _Batch) -> list[Awaitable[Any]]:
        pending: list[Awaitable[Any]] = []
        partitions = self.settings.topic_partitions
        topic = self.settings.topic_partials
        for chunk in batch.chunks:
            encoded: list[list[bytes]] = [[] for _ in range(partitions)]
            for key, partial in chunk.partials.items():
                encoded[partials_partition(key, partitions)].append(orjson.dumps(partial.to_dict()))
                await self._turns.take()
            progress = orjson.dumps(chunk.progress) if chunk.progress else None
            for p, items in enumerate(encoded):
                for value in bundles(items, progress):
                    pending.append(await producer.send(topic, value=value, partition=p))
                    await self._turns.take()
            # List hygiene's observations, in the same transaction (streams.recipients), and
            # the progress record to every recipients partition: the aggregation judges a
            # bucket only once every partition has counted the suppressions decided in it.
            if self.engine.hygiene is None:
                continue
            for p in range(self.settings.topic_partitions):
                for value in observation_bundles(chunk.recipients.get(p), chunk.progress):
                    pending.append(
                        await producer.send(
                            self.settings.topic_recipients, value=value, partition=p
                        )
                    )
                    await self._turns.take()
        for record in batch.dead:
            pending.append(
                await producer.send(
                    self.settings.topic_dead_letter,
                    key=record.key,
                    value=record.value,
                    headers=record.headers,
                )
            )
            await self._turns.take()
        return pending

    def _count(self, batch: _Batch) -> None:
        metrics = self.metrics
        metrics.messages_in.inc(batch.messages)
        metrics.dead_lettered.inc(len(batch.dead))
        for chunk in batch.chunks:
            metrics.partials_sent.inc(len(chunk.partials))
            if chunk.recipients:
                metrics.observations_sent.inc(sum(len(o) for o in chunk.recipients.values()))
            for (fmt, outcome, isp), n in chunk.tally.events.items():
                metrics.events_in.labels(fmt, outcome, isp).inc(n)
            for isp, n in chunk.tally.soft.items():
                metrics.soft_bounces.labels(isp).inc(n)
            if chunk.tally.skipped:
                metrics.events_skipped.inc(chunk.tally.skipped)
        for direction, n in self.inputs.refused.items():
            counted = self._refused_counted.get(direction, 0)
            if n > counted:
                metrics.events_refused.labels(direction).inc(n - counted)
                self._refused_counted[direction] = n

    # ---- observation

    def lag(self) -> dict[tuple[str, int], int]:
        consumer = self._consumer
        if consumer is None:
            return {}
        lag: dict[tuple[str, int], int] = {}
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = self._position(consumer, tp)
            if highwater is not None and position is not None:
                lag[(tp.topic, tp.partition)] = max(0, highwater - position)
        return lag
