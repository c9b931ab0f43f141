"""Producing to and reading from the test broker with kafka-python."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer


def produce_batches(
    bootstrap: str, topic: str, events: Iterable[dict[str, Any]], per_message: int = 200
) -> int:
    """Send ``events`` as JSON arrays of ``per_message``; returns how many were sent."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    batch: list[dict[str, Any]] = []
    sent = 0
    try:
        for event in events:
            batch.append(event)
            if len(batch) == per_message:
                producer.send(topic, json.dumps(batch).encode())
                sent += len(batch)
                batch = []
        if batch:
            producer.send(topic, json.dumps(batch).encode())
            sent += len(batch)
        producer.flush()
    finally:
        producer.close()
    return sent


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The events of a file, in event-time order (as an MTA would log them)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        events = [json.loads(line) for line in fh if line.strip()]
    events.sort(key=lambda e: datetime.fromisoformat(e["event_time"]))
    return events


class TopicReader:
    """Reads a topic from the beginning, keeping what it has read between calls."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=500,
        )
        self.records: list[Any] = []

    def poll(self) -> list[Any]:
        self.records.extend(self.consumer)
        return self.records

    def wait_for(
        self, done: Callable[[list[Any]], bool], timeout: float, settle: float = 0.0
    ) -> list[Any]:
        """Poll until ``done(records)``, then ``settle`` seconds more for stragglers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done(self.poll()):
            time.sleep(0.2)
        end = time.monotonic() + settle
        while time.monotonic() < end:
            self.poll()
            time.sleep(0.2)
        return self.records

    def close(self) -> None:
        self.consumer.close()
