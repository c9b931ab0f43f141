"""Table changelog writes appended to the Kafka producer's batches (``streams.changelog``),
against a real broker: each partition gets exactly the writes made, in their order, in
several batches; the store learns the last offset; a write the broker refuses makes the
failure stick, so that no flush (and no offset commit) passes it."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from faust.types import TP

from streams.changelog import ChangelogRecords

pytestmark = pytest.mark.integration


class Store:
    """What ``ChangelogRecords`` asks of a table's store: where its changelog was read to."""

    def __init__(self) -> None:
        self.persisted: dict[TP, int] = {}

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self.persisted[tp] = offset


async def read_back(bootstrap: str, topic: str, partition: int) -> list[tuple[Any, Any, int]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        out: list[tuple[Any, Any, int]] = []
        while await consumer.position(tp) < end:
            for record in (await consumer.getmany(tp, timeout_ms=2000)).get(tp, []):
                out.append((record.key, record.value, record.offset))
        return out
    finally:
        await consumer.stop()


def test_writes_arrive_in_order_in_batches_and_the_store_learns_the_offset(
    kafka_bootstrap: str, new_topic: Any
) -> None:
    topic = new_topic(2, prefix="changelog")
    rng = random.Random(7)
    store = Store()

    async def scenario() -> tuple[dict[int, list[Any]], int, list[Any]]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_batch_size=64 * 1024)
        await producer.start()
        handed: list[int] = []
        records = ChangelogRecords(handed.append)
        stop = asyncio.Event()
        sender = asyncio.create_task(records.send(lambda: producer, stop.is_set))
        written: dict[int, list[Any]] = {0: [], 1: []}
        futures = []
        last: dict[int, asyncio.Future[None]] = {}
        try:
            for _ in range(3):
                for n in range(2000):
                    p = rng.randrange(2)
                    key = f"k{rng.randrange(300)}".encode()
                    # Some deletes (tombstones) among values of about 1 KB.
                    value = None if n % 97 == 0 else bytes(rng.randrange(256) for _ in range(8))
                    value = None if value is None else value * 128
                    last[p] = records.put(TP(topic, p), store, key, value)
                    written[p].append((key, value))
                    if n % 500 == 0:
                        futures.append(last[p])
                        await asyncio.sleep(0)  # the sender runs between writes
                await asyncio.sleep(0)
            # The last writes of each partition: theirs is done once all before are.
            futures += [last[p] for p in (0, 1)]
            await asyncio.wait_for(asyncio.gather(*futures), timeout=60)
            assert records.waiting == 0
        finally:
            stop.set()
            await sender
            await producer.stop()
        return written, sum(handed), futures

    written, handed, futures = asyncio.run(scenario())
    assert handed == 6000
    assert all(f.done() and f.exception() is None for f in futures)
    for p in (0, 1):
        got = asyncio.run(read_back(kafka_bootstrap, topic, p))
        assert [(k, v) for k, v, _ in got] == written[p]
        assert store.persisted[TP(topic, p)] == got[-1][2]


def test_a_refused_write_sticks_as_the_failure(kafka_bootstrap: str, new_topic: Any) -> None:
    topic = new_topic(1, prefix="changelog")
    store = Store()

    async def scenario() -> tuple[BaseException | None, BaseException | None]:
        # Batches of up to 4 MB, past the broker's default message limit of 1 MB.
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap,
            max_batch_size=4 * 1024 * 1024,
            max_request_size=8 * 1024 * 1024,
            request_timeout_ms=10_000,
        )
        await producer.start()
        records = ChangelogRecords(lambda n: None)
        stop = asyncio.Event()
        sender = asyncio.create_task(records.send(lambda: producer, stop.is_set))
        try:
            done = records.put(TP(topic, 0), store, b"big", b"x" * (2 * 1024 * 1024))
            with pytest.raises(Exception) as refused:
                await asyncio.wait_for(done, timeout=60)
            return records.failure, refused.value
        finally:
            stop.set()
            await sender
            await producer.stop()

    failure, refused = asyncio.run(scenario())
    assert failure is not None
    assert type(refused) is type(failure)
    assert TP(topic, 0) not in store.persisted
