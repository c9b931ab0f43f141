"""A worker reading a backlog keeps answering on its web port.

An ingest batch of a backlog holds thousands of messages and takes seconds to read; the
web port (liveness, readiness, metrics) shares the event loop with it. Without the ingest
agent giving the loop a turn (``streams.topology.INGEST_SLICE_SECONDS``), /healthz would
hang for the whole batch, and a liveness probe with a timeout of a second or two would
restart a worker just when it has the most to do.
"""

from __future__ import annotations

import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.kafka_io import produce_batches
from tests.support.worker import WorkerProcess, isolated_env

pytestmark = pytest.mark.integration

EVENTS = 300_000
DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "icloud.com", "gmx.de", "example.org")
REPLIES = (
    {"code": 250, "text": "2.0.0 OK"},
    {"code": 421, "enhanced": "4.7.28", "text": "4.7.28 Our system has detected an unusual rate"},
    {"code": 550, "enhanced": "5.1.1", "text": "5.1.1 The email account does not exist"},
)


def backlog() -> list[dict[str, Any]]:
    """Four minutes of event time: less than one flush span (``MAX_FLUSH_SPAN_SECONDS``), so
    the batch sends its partials at its end only, without an ``await`` before then."""
    start = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    return [
        {
            "event_time": (start + timedelta(microseconds=800 * i)).isoformat(),
            "recipient": f"user{i}@{DOMAINS[i % len(DOMAINS)]}",
            "source_ip": f"192.0.2.{i % 16}",
            "reply": REPLIES[0] if i % 10 else REPLIES[(i // 10) % 2 + 1],
        }
        for i in range(EVENTS)
    ]


def answered(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_web_port_answers_while_a_large_batch_is_read(
    kafka_bootstrap: str, new_topic: Any, tmp_path: Path
) -> None:
    env = isolated_env(
        kafka_bootstrap,
        new_topic,
        BOUNCEWATCH_INGEST_BATCH_SECONDS="5",
        BOUNCEWATCH_INGEST_BATCH_MESSAGES="10000",
    )
    messages = -(-EVENTS // 100)
    produce_batches(kafka_bootstrap, env["BOUNCEWATCH_TOPIC_INPUT"], backlog(), per_message=100)
    with WorkerProcess(env, tmp_path) as worker:
        url = f"http://127.0.0.1:{worker.web_port}/healthz"
        # From the first answer on, before the group is joined: the backlog's first batch
        # is read as soon as the partitions are assigned, possibly before /readyz says so.
        worker.wait_until("the web port answers", lambda: answered(url), timeout=120)
        slowest = 0.0
        answers = 0
        deadline = time.monotonic() + 300
        while True:
            assert time.monotonic() < deadline, f"backlog not read in time:\n{worker.tail(30)}"
            asked = time.monotonic()
            with urllib.request.urlopen(url, timeout=60) as response:
                assert response.status == 200
            slowest = max(slowest, time.monotonic() - asked)
            # The scrape is timed too: whichever request meets a busy loop waits for it.
            asked = time.monotonic()
            read = worker.metric("bouncewatch_messages_total")
            slowest = max(slowest, time.monotonic() - asked)
            answers += 1
            if read >= messages:
                break
            time.sleep(0.05)
        # The whole backlog is one batch of 3,000 messages, read in seconds; every request
        # meanwhile was answered within Kubernetes' default probe timeout of one second.
        assert answers >= 10, f"the backlog was read before it could be watched ({answers})"
        assert slowest < 1.0, f"a request took {slowest:.2f}s while a batch was read"
