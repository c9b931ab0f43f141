"""The test broker itself: it is Apache Kafka 4.x, it serves producers and consumer groups,
and stopping it leaves nothing behind."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable

import kafka_broker
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bouncewatch.broker_process import live_brokers

pytestmark = pytest.mark.integration


def test_broker_is_apache_kafka_4(kafka_broker_process: kafka_broker.KafkaBroker | None) -> None:
    if kafka_broker_process is None:
        pytest.skip("external broker: its version is not ours to check")
    assert kafka_broker_process.running
    assert kafka_broker_process.version.startswith("4.")
    # What the running JVM says, not only what we asked Maven for.
    assert kafka_broker_process.reported_version() == kafka_broker_process.version


def test_produce_then_consume_through_a_group(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=3)
    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(30)}
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    try:
        for key, value in sent.items():
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"test-group-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        received: dict[bytes, bytes] = {}
        deadline = time.monotonic() + 30
        while len(received) < len(sent) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                received.update((record.key, record.value) for record in records)
        assert received == sent
        # A commit proves the group coordinator (and its offsets topic) works, not just fetch.
        consumer.commit()
        partitions = [TopicPartition(topic, p) for p in range(3)]
        assert sum(consumer.committed(tp) or 0 for tp in partitions) == len(sent)
    finally:
        consumer.close()


def test_stop_ends_exactly_the_broker_and_removes_its_files() -> None:
    if os.environ.get("BOUNCEWATCH_TEST_KAFKA"):
        pytest.skip("external broker in use: java/mvn may not be installed here")
    broker = kafka_broker.KafkaBroker().start()
    pid, workdir = broker.pid, broker.workdir
    try:
        assert live_brokers("127.0.0.1", int(broker.bootstrap_servers.rsplit(":", 1)[1])) == 1
    finally:
        broker.stop()
    assert not broker.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not workdir.exists()
