"""The Faust app, built from the settings: broker, credentials, store, web port, membership.

An app is built by a function rather than at module level because its configuration comes
from the environment at start, and tests build several apps (with their own ports and
groups) in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Collection
from typing import Any, cast

import faust
from faust.stores import rocksdb as faust_rocksdb
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.producer import ProducerBuffer
from faust.types import TP
from faust.types.tuples import FutureMessage
from faust.web.drivers import aiohttp as faust_aiohttp
from mode import Service

from schemas.settings import SecurityProtocol, Settings
from streams.changelog import ChangelogRecords
from streams.logs import logging_config

_log = logging.getLogger(__name__)


def _ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
    )
    if settings.kafka_ssl_certfile is not None:
        context.load_cert_chain(
            str(settings.kafka_ssl_certfile),
            str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
        )
    return context


def broker_credentials(settings: Settings) -> faust.types.auth.CredentialsT | None:
    protocol = settings.kafka_security_protocol
    if protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL):
        password = settings.kafka_sasl_password
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=password.get_secret_value() if password is not None else None,
            mechanism=settings.kafka_sasl_mechanism.value
            if settings.kafka_sasl_mechanism
            else None,
            ssl_context=_ssl_context(settings) if protocol is SecurityProtocol.SASL_SSL else None,
        )
    if protocol is SecurityProtocol.SSL:
        return faust.SSLCredentials(_ssl_context(settings))
    return None


class ActivePartitions:
    """The partitions Faust's fetcher asks aiokafka for: those active when records are handed
    over, and none when none is.

    Faust passes its own set of active partitions, which it changes while aiokafka waits for
    records (up to a second), and aiokafka reads an empty set as every partition: a fetch
    started during a table recovery (changelog partitions active) that ended after the
    recovery paused them took the records of every partition, the paused stream partitions
    too, moving their positions past them, and Faust dropped them (not active). The agents
    never saw those messages, and their offsets were committed (issue 15).
    """

    __slots__ = ("live",)

    def __init__(self, live: Collection[Any]) -> None:
        self.live = live

    def __bool__(self) -> bool:
        return True  # never "every partition"

    def __contains__(self, tp: object) -> bool:
        return tp in self.live


class _ReadCommittedThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read when the consumer starts; Faust sets read_committed only with its own
        # exactly_once mode, whose transactions we do not use.
        consumer._isolation_level = "read_committed"
        return consumer

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,  # noqa: ASYNC109  (Faust calls it so)
        max_records: int | None = None,
    ) -> Any:
        if active_partitions is not None:  # None: a client-only app, every partition
            active_partitions = ActivePartitions(active_partitions)
        return await super()._fetch_records(
            consumer, active_partitions, timeout=timeout, max_records=max_records
        )


class _ReadCommittedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> Any:
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        """Mark offsets ``offset_from`` to ``offset_to - 1`` as never to be delivered.

        Faust calls this when the message at ``offset_to`` arrives after the one at
        ``offset_from - 1`` (offsets between them are transaction markers or aborted
        records, none of which reach an agent), and counts the gap as acknowledged. Its own
        gap runs to ``offset_to`` inclusive: the message just arriving counted as handled
        before any agent saw it, and an agent acknowledging out of order (the recipients
        agent acknowledges a message once its decisions are published) let a commit pass it.
        """
        await super()._add_gap(tp, offset_from, offset_to - 1)


#: Longest the conductor holds a message back for the producer buffer to drain (Faust's own
#: wait gives up after 100 sends or 0.1 s timeouts, about 10 s at most).
EBB_PATIENCE_SECONDS = 10.0


class _ExactProducerBuffer(ProducerBuffer):
    """Faust's producer buffer, with a flush that ends only once every message put before it
    was handed to the Kafka producer, and the tables' changelog writes appended straight to
    the Kafka producer's batches (``streams.changelog``).

    Faust flushes the producer before it commits the offsets of the messages its agents
    processed, but its buffer's flush gives up as soon as one message takes longer than 0.1 s
    to hand over (a busy worker catching up): the offsets were then committed with table
    writes still waiting, and a crash lost them for good (a pod restarted elsewhere recovers
    only what reached the changelog). This flush waits for the messages and writes put before
    it and not for those put while it waits, so a worker that never stops writing still
    commits; after a changelog write failed, it raises, so that nothing is committed past it.
    """

    #: Messages that may wait before the conductor holds back the agents' input
    #: (``wait_until_ebb``): Faust's 100 had every message delivered while a table-writing
    #: agent kept more waiting (the recipients agent keeps up to 1,000) wait for 100 sends.
    max_messages = 1_000

    def __post_init__(self) -> None:
        super().__post_init__()
        #: Messages and changelog writes put, and handed to the Kafka producer, since start.
        self.put_count = 0
        self.handed_count = 0
        #: Set once at most ``_ebb_limit`` messages wait (-1: nobody waits for that).
        self._ebb = asyncio.Event()
        self._ebb_limit = -1
        self.records = ChangelogRecords(self._handed)

    @property
    def size(self) -> int:
        """Messages and changelog writes waiting to be handed to the Kafka producer."""
        return int(super().size) + self.records.waiting

    def put(self, fut: FutureMessage) -> None:
        self.put_count += 1
        super().put(fut)

    def put_record(
        self, tp: TP, store: Any, key: bytes | None, value: bytes | None
    ) -> asyncio.Future[None]:
        """Queue a table write to changelog partition ``tp``; the future is done once it is
        acknowledged (``streams.changelog``)."""
        self.put_count += 1
        return self.records.put(tp, store, key, value)

    @Service.task
    async def _send_records(self) -> None:
        def producer() -> Any:
            return cast(Any, self.app).producer._ensure_producer()

        await self.records.send(producer, lambda: bool(self.should_stop))

    async def _send_pending(self, fut: FutureMessage) -> None:
        try:
            await super()._send_pending(fut)
        finally:
            self._handed(1)

    def _handed(self, count: int) -> None:
        self.handed_count += count
        self.message_sent.set()
        if self._ebb_limit >= 0 and self.size <= self._ebb_limit:
            self._ebb_limit = -1
            self._ebb.set()

    async def wait_until_ebb(self) -> None:
        """Faust's conductor calls this before each message it hands to an agent. Its own
        waits for each of up to ``max_messages`` sends with a task of its own (a timeout
        of 0.1 s): tens of thousands of tasks a second while a busy agent writes; this one
        wakes once, when the buffer is down to ``max_messages``. Like Faust's, it lets the
        message through after ``EBB_PATIENCE_SECONDS`` whatever the buffer holds: a buffer
        that does not drain (a broker outage) must not stop the agents for good."""
        if self.size <= self.max_messages:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self.wait_at_most(self.max_messages), timeout=EBB_PATIENCE_SECONDS
            )

    async def on_stop(self) -> None:
        # Faust flushes here, after its sender has stopped; the writes left are those of
        # messages whose offsets no commit covered, which the next owner reads again.
        left = self.put_count - self.handed_count
        if left:
            _log.warning("stopping with %d table writes not sent; their input is read again", left)

    def raise_failure(self) -> None:
        """Raise if a changelog write failed (module ``streams.changelog``)."""
        if self.records.failure is not None:
            raise RuntimeError("a table changelog write failed") from self.records.failure

    async def flush(self) -> None:
        target = self.put_count
        while self.handed_count < target:
            self.raise_failure()
            if self.should_stop:
                # Its sender has stopped: what is left will not be sent, and committing past
                # it would lose it.
                raise RuntimeError("Cannot flush: Producer not Running")
            self.message_sent.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.message_sent.wait(), timeout=1.0)

    async def wait_at_most(self, limit: int) -> None:
        """Wait until at most ``limit`` messages wait in the buffer (or it stops).

        Faust's own bound does not hold against an agent that writes many table keys per
        message: the conductor calls ``wait_until_ebb`` only before it hands a message to
        the agents' queues (faust-streaming 0.15.3, faust/transport/conductor.py:111), so the
        messages already queued for an agent (up to ``stream_buffer_maxsize``) write
        unchecked, and it waits for at most ``max_messages`` wake-ups of 0.1 s each before
        it lets the message through anyway (faust/transport/producer.py:78-116). A writer
        faster than the Kafka producer then grows the buffer without limit, each message
        holding its key and value serialized (issue 14: about 9 KiB each with orjson 3.13,
        whose output keeps a 4 KiB allocation). An agent that awaits this before its writes
        holds the buffer near ``limit``.
        """
        while self.size > limit and not self.should_stop:
            # Woken when the buffer is down to the largest limit waited for, not at every
            # message sent (each wake-up a turn of the loop and a task of ``wait_for``).
            self._ebb_limit = max(self._ebb_limit, limit)
            self._ebb.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ebb.wait(), timeout=1.0)


class _Producer(faust_aiokafka.Producer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.app.conf.producer_threaded:
            raise ValueError("the exact producer buffer does not support producer_threaded")
        self.buffer = _ExactProducerBuffer(loop=self.loop, beacon=self.beacon)
        self.buffer.app = self.app

    async def flush(self) -> None:
        await super().flush()
        # A write handed over may have failed while the Kafka producer flushed.
        assert isinstance(self.buffer, _ExactProducerBuffer)
        self.buffer.raise_failure()


class _Transport(faust_aiokafka.Transport):
    Consumer = _ReadCommittedConsumer
    Producer = _Producer


# ---- RocksDB memory ------------------------------------------------------------------------
#
# Faust opens one RocksDB database per table partition (three tables: 24 databases on a worker
# owning 8 partitions), each with its own 2 GiB block cache and three 64 MiB write buffers:
# unbounded in practice against a pod's memory limit. Here every database of the process
# shares one LRU block cache, and their memtables are charged to it by one write-buffer
# manager, so RocksDB's memory stays near ROCKSDB_CACHE_BYTES however many partitions a
# worker owns. The tables are small (buckets of a few hundred keys, alert states, the
# notification log): 64 MiB holds all of them with room to spare (docs/benchmarks.md).

#: The block cache shared by every table partition's database (data, index and filter
#: blocks, and the memtables).
ROCKSDB_CACHE_BYTES = 64 * 1024**2
#: Memtables of all databases together, charged to the cache (a flush starts beyond it).
ROCKSDB_WRITE_BUFFERS_BYTES = 32 * 1024**2
#: One memtable of one database; at most two per database (one being flushed).
ROCKSDB_WRITE_BUFFER_BYTES = 4 * 1024**2


class _BoundedRocksDBOptions(faust_rocksdb.RocksDBOptions):
    """Faust's RocksDB options with the shared cache and write-buffer manager (rocksdict)."""

    write_buffer_size = ROCKSDB_WRITE_BUFFER_BYTES
    max_write_buffer_number = 2
    target_file_size_base = 8 * 1024**2
    block_cache_size = ROCKSDB_CACHE_BYTES
    block_cache_compressed_size = 0
    _shared: Any = None  # (Cache, WriteBufferManager) of the process, made on first use

    @classmethod
    def shared(cls) -> tuple[Any, Any]:
        if _BoundedRocksDBOptions._shared is None:
            import rocksdict  # the rocksdb extra; Faust checked it is there

            cache = rocksdict.Cache(ROCKSDB_CACHE_BYTES)
            manager = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
                ROCKSDB_WRITE_BUFFERS_BYTES, False, cache
            )
            _BoundedRocksDBOptions._shared = (cache, manager)
        cache, manager = _BoundedRocksDBOptions._shared
        return cache, manager

    def as_options(self) -> Any:
        if not self.use_rocksdict:  # python-rocksdb: Faust's options, with our sizes
            return super().as_options()
        import rocksdict

        cache, manager = self.shared()
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        if self.max_open_files is not None:
            options.set_max_open_files(self.max_open_files)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_max_write_buffer_number(self.max_write_buffer_number)
        options.set_target_file_size_base(self.target_file_size_base)
        options.set_write_buffer_manager(manager)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, block_based=True)
        table.set_block_cache(cache)
        # Index and filter blocks in the cache too (else each open file holds its own).
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        return options


class _Table(faust.Table):  # type: ignore[type-arg]
    """A table whose RocksDB store uses :class:`_BoundedRocksDBOptions`, and whose writes go
    to the changelog through :meth:`_ExactProducerBuffer.put_record` (``streams.changelog``).
    """

    def _verify_source_topic_partitions(self, source_topic: str) -> None:
        # Faust compares the partitions of the source and changelog topics at the first write
        # and raises when they differ; a changelog topic created moments ago can be listed
        # with no partitions yet, which crashed the agent over a real table (CI, once). Such a
        # write is let through and the check made again at the next one.
        if source_topic in self._verified_source_topics_for_partitions:
            return
        if not self.app.consumer.topic_partitions(self.changelog_topic_name):
            return
        super()._verify_source_topic_partitions(source_topic)

    def on_key_set(self, key: Any, value: Any) -> None:
        # Faust's, without the FutureMessage it reads the partition from.
        partition = self.partition_for_key(key)
        if partition is None:  # a table with use_partitioner: none of ours
            return super().on_key_set(key, value)
        self.send_changelog(partition, key, value)
        self._maybe_set_key_ttl(key, partition)
        self._sensor_on_set(self, key, value)

    def on_key_del(self, key: Any) -> None:
        partition = self.partition_for_key(key)
        if partition is None:
            return super().on_key_del(key)
        self.send_changelog(partition, key, None, value_serializer="raw")
        self._maybe_del_key_ttl(key, partition)
        self._sensor_on_del(self, key)

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> Any:
        """Queue the write to the changelog; a future done once the broker has it."""
        buffer = getattr(self.app.producer, "buffer", None)
        if partition is None or not isinstance(buffer, _ExactProducerBuffer):
            return super().send_changelog(partition, key, value, key_serializer, value_serializer)
        topic = self.changelog_topic
        encoded_key, _ = topic.prepare_key(key, key_serializer or self.key_serializer)
        encoded_value = None
        if value is not None:
            encoded_value, _ = topic.prepare_value(value, value_serializer or self.value_serializer)
        return buffer.put_record(
            TP(topic.get_topic_name(), partition), self.data, encoded_key, encoded_value
        )

    def _new_store_by_url(self, url: Any) -> Any:
        store = super()._new_store_by_url(url)
        if isinstance(store, faust_rocksdb.Store):
            # Databases are opened later, per partition, with these options.
            store.rocksdb_options = _BoundedRocksDBOptions(
                **(store.options or {}), use_rocksdict=store.use_rocksdict
            )
        return store


class _Recovery(Recovery):
    """Faust's table recovery, with the stream partitions resumed only after their seek.

    Once the tables are recovered, Faust resumes the stream partitions, then seeks them to
    their committed offsets, then clears the agents' queues (``flow_control.resume``) while
    its fetcher runs all along. Messages fetched during the seek went into a queue that was
    then cleared, and the seek reset Faust's read offset behind the fetcher's position: the
    next message's offset jump was taken for a gap of transaction markers (or fell in the
    one offset Faust lets a commit skip after the committed one), counted as acknowledged,
    and the offsets were committed past messages no agent had seen (a notify transition
    never sent after quick restarts, issue 15). Here the partitions are seeked while still
    paused, then the queues cleared and flow resumed, then the partitions resumed, with no
    await after the seek: with :class:`ActivePartitions` (a paused partition's records are
    not handed out), nothing is fetched from them before the seek, and nothing they deliver
    is cleared.
    """

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        # Faust's Recovery.on_recovery_completed (faust-streaming 0.15), reordered.
        app: Any = self.app
        consumer = app.consumer
        self.log.info("Restore complete!")
        await app.on_rebalance_complete.send()
        self._set_recovery_ended()
        callbacks = [
            asyncio.ensure_future(
                table.on_recovery_completed(
                    self.actives_for_table[table], self.standbys_for_table[table]
                )
            )
            for table in self.tables.values()
        ]
        if callbacks:
            await asyncio.wait(callbacks)
        assignment = consumer.assignment()
        if app.consumer_generation_id != generation_id:
            self.log.warning(
                f"Recovery rebalancing again app id {app.consumer_generation_id} "
                f"param {generation_id}"
            )
            return
        if assignment:
            self.log.info("Seek stream partitions to committed offsets.")
        await resume_streams_after_seek(
            consumer,
            app.flow_control,
            {tp for tp in assignment if not self._is_changelog_tp(tp)},
            seek=(
                (lambda: self._wait(consumer.perform_seek(), app.conf.broker_request_timeout))
                if assignment
                else None
            ),
        )
        self.completed.set()
        await app._fetcher.maybe_start()
        self.tables.on_actives_ready()
        if not app.assignor.assigned_standbys():
            self.tables.on_standbys_ready()
        app.on_rebalance_end()
        self.log.info("Worker ready")


async def resume_streams_after_seek(
    consumer: Any,
    flow_control: Any,
    streams: set[Any],
    *,
    seek: Callable[[], Awaitable[None]] | None,
) -> None:
    """Seek the paused stream partitions ``streams`` to their committed offsets (``seek``),
    then clear the agents' queues and resume flow, then resume the partitions (see
    :class:`_Recovery`)."""
    if seek is not None:
        await seek()
    # No await from here on: the fetcher cannot deliver anything between the clearing of the
    # queues and the partitions' resumption.
    flow_control.resume()  # clears the agents' queues
    consumer.resume_flow()
    consumer.resume_partitions(streams)


class _TableManager(TableManager):
    """Faust's table manager, with :class:`_Recovery`."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = _Recovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


class _Web(faust_aiohttp.Web):
    """Faust's aiohttp server with none of Faust's own pages, only those the app adds.

    Faust serves, besides the flags below, a production index at ``/`` that no setting
    turns off; the web port is to serve only what README lists (/healthz, /readyz, /metrics,
    /status).
    """

    default_blueprints = ()  # /router, /table
    production_blueprints = ()  # / ({"status": "OK"})
    debug_blueprints = ()  # /graph, / and /assignment/ (sensor statistics)
    optional_blueprints = ()  # /performance


class App(faust.App):
    """A Faust app whose agents read ``read_committed``: the ingest sends its partials in
    Kafka transactions, and an aborted batch must never be merged. Offsets are committed only
    after every table write before them was sent (``_ExactProducerBuffer``). Its web server
    serves only the pages the app adds."""

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)

    def _new_web(self) -> Any:
        return _Web(self)


def create_app(settings: Settings, **overrides: Any) -> faust.App:
    """The app for ``settings``; ``overrides`` are Faust settings a broker needs (dev)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_list],
        broker_credentials=broker_credentials(settings),
        store=settings.store,
        Table=_Table,
        TableManager=_TableManager,
        datadir=str(settings.data_dir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        # Our topics are created by `bouncewatch topics create` (or at start), with the
        # partition counts the tables need; Faust must not auto-create them with others.
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        # Offsets of the low-volume streams (partials, transitions) are committed on the timer
        # only: an inline commit in Faust's fetch loop flushes the producer with no timeout, and
        # a flush waiting on a fresh broker's metadata then stops every stream.
        broker_commit_interval=1.0,
        broker_commit_every=1 << 30,
        # Faust's default of 20 minutes turns a broker outage into a silent hang.
        producer_request_timeout=30.0,
        consumer_group_instance_id=settings.instance_id,
        web_enabled=True,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        autodiscover=False,
        value_serializer="json",
        logging_config=logging_config(settings.log_level, settings.log_format.value),
        web_metrics_enabled=False,
        # Faust's /table and /router views would expose table contents (stored delivery
        # errors) to anyone reaching the probe port.
        web_tables_enabled=False,
        web_router_enabled=False,
        # Nor the sensor statistics, partition assignment and service graph (on with debug);
        # the production index at / goes with the web driver (_Web).
        web_stats_enabled=False,
        web_graph_enabled=False,
        # Each table write is a changelog message; without linger nearly every one went out in
        # a produce request of its own (a syscall and a broker round trip each). 10 ms groups
        # them, and delays an ingest batch's acknowledgement by at most as much.
        producer_linger=0.01,
        # Faust reads ahead up to this many messages per agent; a partials bundle is up to
        # 256 KB, and its default of 4,096 let a worker catching up hold a gigabyte of them.
        stream_buffer_maxsize=256,
        # Faust's consumer asks the broker to hold a fetch up to 1.5 s (fixed), and fetches a
        # partition again only once its buffered records are handed over: a partition whose
        # flush of observations (about 5 MB per recipients partition for a 10 s backlog batch)
        # needs a second fetch waits behind the fetch held for the idle partitions. 8 MiB per
        # partition brings such a flush in one fetch, and holds at most twice Faust's default
        # per partition in hand (no change in a worker's resident memory was measurable:
        # docs/benchmarks.md, eleventh session).
        consumer_max_fetch_size=8 * 1024 * 1024,
        **{
            # A merge writes one changelog message per bucket it touches: a worker merging a
            # backlog's partials writes thousands a second. Batches of 256 KB (aiokafka's
            # default is 16 KB) send them in a few produce requests instead of hundreds. The
            # development broker needs batches of one record (``FAUST_SETTINGS``).
            "producer_max_batch_size": 256 * 1024,
            **overrides,
        },
    )


def create_worker(app: faust.App, settings: Settings) -> faust.Worker:
    """The Faust worker that runs ``app``, logging as the settings say.

    Faust's worker draws a terminal spinner, and to feed it, at WARNING and above it sets the
    root logger to DEBUG: every debug call in Faust and aiokafka (one per message produced)
    then builds a LogRecord that the handlers drop. No terminal watches a worker, so the
    spinner goes and the root logger keeps the configured level.
    """
    worker = faust.Worker(
        app,
        loglevel=settings.log_level,
        logging_config=dict(app.conf.logging_config),
        # The console port is a debugging backdoor; never open it.
        console_port=0,
        redirect_stdouts=False,
    )
    worker.spinner = None
    return worker


def owned(app: faust.App, topic: str) -> list[Any]:
    """The partitions of ``topic`` this worker actively owns now (none while rebalancing):
    the ones its timers send ticks to."""
    if app.rebalancing:
        return []
    return sorted(
        (tp for tp in app.assignor.assigned_actives() if tp.topic == topic),
        key=lambda tp: tp.partition,
    )
