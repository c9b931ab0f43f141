"""A worker on the RocksDB store opens every table partition's database with the bounded
options of streams.app (one 64 MiB block cache shared by all, 4 MiB write buffers), not
Faust's 2 GiB cache and 64 MiB write buffers per database; and counts as on the memory store."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from streams.app import ROCKSDB_CACHE_BYTES, ROCKSDB_WRITE_BUFFER_BYTES
from tests.support.worker import WorkerProcess, isolated_env

pytestmark = pytest.mark.integration


def test_rocksdb_databases_get_the_bounded_options(
    kafka_bootstrap: str, new_topic: Any, tmp_path: Path
) -> None:
    env = isolated_env(kafka_bootstrap, new_topic, BOUNCEWATCH_STORE="rocksdb://")
    events = [
        {
            "event_time": f"2026-11-24T06:{minute:02d}:00Z",
            "recipient": f"user{minute}@gmail.com",
            "reply": {"code": 421 if minute % 3 else 250, "text": "try later"},
        }
        for minute in range(12)
    ]
    with WorkerProcess(env, tmp_path) as worker:
        worker.wait_ready()
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
        producer.send(env["BOUNCEWATCH_TOPIC_INPUT"], json.dumps(events).encode())
        producer.flush()
        producer.close()
        worker.wait_until(
            "events counted",
            lambda: worker.metric("bouncewatch_events_total") == len(events),
            timeout=60,
            state=lambda: f"counted {worker.metric('bouncewatch_events_total')}",
        )
    tables = tmp_path / "worker-data" / "v1" / "tables"
    databases = sorted(tables.glob("*.db"))
    # Every partition of the three tables the worker owned has a database of its own.
    assert {db.name.rsplit("-", 1)[0] for db in databases} == {
        "buckets",
        "alert-states",
        "notify-state",
    }
    for db in databases:
        (options,) = db.glob("OPTIONS-*")
        text = options.read_text()
        assert re.search(rf"^\s*write_buffer_size={ROCKSDB_WRITE_BUFFER_BYTES}$", text, re.M), db
        assert re.search(r"^\s*max_write_buffer_number=2$", text, re.M), db
        assert re.search(r"^\s*cache_index_and_filter_blocks=true$", text, re.M), db
        log = (db / "LOG").read_text()
        capacities = set(re.findall(r"^\s*capacity : (\d+)$", log, re.M))
        assert capacities == {str(ROCKSDB_CACHE_BYTES)}, (db, capacities)
