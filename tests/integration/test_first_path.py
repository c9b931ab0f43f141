"""Events through a real worker on the real broker: counted per recipient domain, or
dead-lettered with their original bytes and the reason. Nothing is lost."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from delivery.adapters import decode_message
from tests.support.worker import WorkerProcess, isolated_env, metric_by

pytestmark = pytest.mark.integration


def event(recipient: str, code: int = 250, minute: int = 0) -> dict[str, Any]:
    return {
        "event_time": f"2026-11-24T06:{minute:02d}:00Z",
        "recipient": recipient,
        "reply": {"code": code, "text": "ok"},
    }


VALID = [
    event("a@gmail.com"),
    event("b@gmail.com", 421),
    event("c@yahoo.com", 550),
    event("d@outlook.com"),
    event("e@gmail.com"),
]
# Each malformed kind, and the field its reason must name (None: not an event at all).
MALFORMED: list[tuple[str, bytes, str | None]] = [
    ("not json", b"this is not json {", None),
    ("not utf-8", b"\xff\xfe\x00garbage", None),
    (
        "wrong type",
        json.dumps({**event("x@gmail.com"), "reply": {"code": "abc"}}).encode(),
        "reply.code",
    ),
    (
        "missing field",
        json.dumps({"recipient": "y@gmail.com", "reply": {"code": 250}}).encode(),
        "event_time",
    ),
    (
        "naive timestamp",
        json.dumps({**event("z@gmail.com"), "event_time": "2026-11-24T06:00:00"}).encode(),
        "event_time",
    ),
    ("empty", b"", None),
]
# A batch message: two good events and one bad one. The good ones count; the message is
# dead-lettered for the bad one, with its index.
BATCH = json.dumps(
    [event("f@gmail.com"), {"recipient": "g@gmail.com"}, event("h@icloud.com")]
).encode()


@pytest.fixture
def worker_env(kafka_bootstrap: str, new_topic: Any) -> dict[str, str]:
    return isolated_env(kafka_bootstrap, new_topic, input_partitions=2)


@pytest.fixture
def worker(worker_env: dict[str, str], tmp_path: Path) -> Iterator[WorkerProcess]:
    with WorkerProcess(worker_env, tmp_path) as process:
        process.wait_ready()
        yield process


def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 60) -> list[Any]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(records) < expected and time.monotonic() < deadline:
            records.extend(consumer)
    finally:
        consumer.close()
    return records


def latest_per_key(records: list[Any]) -> dict[str, Any]:
    latest: dict[str, Any] = {}
    for record in records:
        # Faust writes table keys JSON-encoded.
        latest[json.loads(record.key)] = json.loads(record.value) if record.value else None
    return latest


def attempts_per_key(records: list[Any]) -> dict[str, int]:
    """Attempts per aggregation key from the bucket entries ``<key>@<bucket start>``."""
    totals: dict[str, int] = {}
    for name, value in latest_per_key(records).items():
        key, _, part = name.rpartition("@")
        if value and part.isdigit():
            totals[key] = totals.get(key, 0) + value["c"]["a"]
    return totals


def wait_for_counts(
    bootstrap: str, app_id: str, expected: dict[str, int], timeout: float = 60
) -> dict[str, int]:
    changelog = f"{app_id}-buckets-changelog"
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    while time.monotonic() < deadline:
        counts = attempts_per_key(read_topic(bootstrap, changelog, 1, timeout=5))
        if counts == expected:
            break
        time.sleep(0.5)
    return counts


def test_events_are_counted_or_dead_lettered(
    worker: WorkerProcess, worker_env: dict[str, str], kafka_bootstrap: str
) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i, item in enumerate(VALID):
        producer.send(
            worker_env["BOUNCEWATCH_TOPIC_INPUT"], json.dumps(item).encode(), key=b"%d" % i
        )
    for _, raw, _ in MALFORMED:
        producer.send(worker_env["BOUNCEWATCH_TOPIC_INPUT"], raw)
    producer.send(worker_env["BOUNCEWATCH_TOPIC_INPUT"], BATCH)
    producer.flush()
    producer.close()

    dead = read_topic(
        kafka_bootstrap, worker_env["BOUNCEWATCH_TOPIC_DEAD_LETTER"], len(MALFORMED) + 1
    )
    assert len(dead) == len(MALFORMED) + 1, worker.tail()
    by_value = {record.value or b"": dict(record.headers) for record in dead}
    for kind, raw, field in MALFORMED:
        assert raw in by_value, f"{kind} was not dead-lettered with its original bytes"
        headers = by_value[raw]
        assert headers["bouncewatch-error"], kind
        assert (
            headers["bouncewatch-source"].decode().startswith(worker_env["BOUNCEWATCH_TOPIC_INPUT"])
        )
        if field is not None:
            assert field in headers["bouncewatch-error-fields"].decode().split(","), (kind, headers)
            assert field.split(".")[-1] in headers["bouncewatch-error"].decode(), (kind, headers)
    batch_headers = by_value[BATCH]
    assert batch_headers["bouncewatch-bad-items"] == b"1"
    assert batch_headers["bouncewatch-counted"] == b"2"

    # Counted per ISP key, in the changelog-backed bucket table, read back through the broker.
    expected = {"isp=gmail": 4, "isp=yahoo": 1, "isp=microsoft": 1, "isp=apple": 1}
    counts = wait_for_counts(kafka_bootstrap, worker_env["BOUNCEWATCH_APP_ID"], expected)
    assert counts == expected, worker.tail()
    # Nothing lost: every good event is counted once, every bad message dead-lettered once.
    assert sum(counts.values()) == len(VALID) + 2


def test_health_and_metrics(worker: WorkerProcess) -> None:
    assert worker.get("/healthz") == (200, {"status": "alive"})
    status, body = worker.get("/readyz")
    assert status == 200 and body["checks"] == {
        "joined_group": True,
        "not_rebalancing": True,
        "tables_recovered": True,
        "ingest_assigned": True,
        "silences_read": True,
    }
    status, text = worker.get("/metrics")
    assert status == 200 and "bouncewatch_messages_total" in text


FORMATS = Path(__file__).resolve().parents[1] / "data" / "formats"
#: Records of other MTAs and ESPs, as a worker on the default `auto` format receives them
#: (a reception record is not a delivery attempt: skipped, not dead-lettered).
MIXED = [
    "bouncewatch/deferred.json",
    "kumomta/delivery.json",
    "kumomta/bounce.json",
    "kumomta/reception.json",
    "ses/bounce_permanent.json",
    "sendgrid/events.json",
    "mailgun/failed_temporary.json",
]


def test_the_auto_format_reads_every_supported_source(
    worker_env: dict[str, str], kafka_bootstrap: str, tmp_path: Path
) -> None:
    payloads = [(FORMATS / name).read_bytes() for name in MIXED]
    # What the decoder makes of each message offline is what the worker must count.
    want: dict[str, float] = {}
    skipped = 0
    for payload in payloads:
        decoded = decode_message(payload, "auto")
        assert not decoded.errors, decoded.errors
        skipped += decoded.skipped
        for e in decoded.events:
            want[e.source_format] = want.get(e.source_format, 0.0) + 1
    assert len(want) == 5 and skipped >= 1, (want, skipped)

    env = {**worker_env, "BOUNCEWATCH_INPUT_FORMAT": "auto"}
    with WorkerProcess(env, tmp_path, name="auto") as worker:
        worker.wait_ready()
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        for payload in payloads:
            producer.send(env["BOUNCEWATCH_TOPIC_INPUT"], payload)
        producer.flush()
        producer.close()

        def by_format() -> dict[str, float]:
            return metric_by(worker.metrics(), "bouncewatch_events_total", "format")

        worker.wait_until(
            "every event counted by its format",
            lambda: by_format() == want,
            timeout=60,
            state=lambda: f"counted {by_format()}, want {want}",
        )
        _, text = worker.get("/metrics")
        assert f"bouncewatch_events_skipped_total {float(skipped)}" in text
        assert "bouncewatch_dead_lettered_total 0.0" in text
