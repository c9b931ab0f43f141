"""Exactly once, proven: a worker SIGKILLed at random moments while a feed arrives, ten times,
and its broker killed for 30 s and started again, ends with every bucket count and every
alert transition equal to `bouncewatch replay` of the same events.

The broker is this test's own (the session broker serves other tests): its outage would
disturb them.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient, NewTopic
from kafka_broker import KafkaBroker

from alerts.replay import Replay
from alerts.rules import load_default_rules
from bouncewatch.commands.replay import read_observations
from tests.support.feeds import as_messages, kumomta_feed, produce_in_slices
from tests.support.kafka_io import TopicReader
from tests.support.transitions import transition_keys
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration

KILLS = 10


def feed() -> list[dict[str, Any]]:
    return kumomta_feed(["gmail_throttling_burst", "yahoo_tss04_wave"], seed=5)


def replayed(records: list[dict[str, Any]], tmp_path: Path) -> Replay:
    path = tmp_path / "feed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    observations, names, _ = read_observations(str(path), "kumomta", "never")
    observations.sort(key=lambda o: o.t)
    backtest = Replay(load_default_rules(), names)
    backtest.feed(observations)
    backtest.finish()
    return backtest


def counts_without_samples(counts: dict[str, Any]) -> dict[str, Any]:
    # Reply samples are a bounded top-k: which texts it keeps may depend on merge order.
    return {k: v for k, v in counts.items() if k != "r"}


def buckets_in_changelog(bootstrap: str, app_id: str) -> dict[str, Any]:
    consumer = KafkaConsumer(
        f"{app_id}-buckets-changelog",
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    latest: dict[str, Any] = {}
    try:
        for record in consumer:
            name = json.loads(record.key)  # the table serializes its keys as JSON
            latest[name] = json.loads(record.value) if record.value else None
    finally:
        consumer.close()
    return {
        name: counts_without_samples(value["c"])
        for name, value in latest.items()
        if value is not None and not name.endswith("@meta")
    }


@pytest.fixture
def broker() -> Any:
    with KafkaBroker() as started:
        yield started


def create_topics(bootstrap: str, env: dict[str, str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="exactly-once-test")
    try:
        admin.create_topics(
            [
                NewTopic(env["BOUNCEWATCH_TOPIC_INPUT"], num_partitions=4, replication_factor=1),
                NewTopic(env["BOUNCEWATCH_TOPIC_ALERTS"], num_partitions=2, replication_factor=1),
                NewTopic(
                    env["BOUNCEWATCH_TOPIC_DEAD_LETTER"], num_partitions=1, replication_factor=1
                ),
            ]
        )
    finally:
        admin.close()


@pytest.mark.long(160)
def test_random_kills_and_a_broker_outage_lose_nothing_and_count_nothing_twice(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    bootstrap = broker.bootstrap_servers
    suffix = uuid.uuid4().hex[:8]
    env = {
        "BOUNCEWATCH_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "BOUNCEWATCH_APP_ID": f"eo-{suffix}",
        "BOUNCEWATCH_TOPIC_INPUT": f"events-{suffix}",
        "BOUNCEWATCH_TOPIC_DEAD_LETTER": f"dlq-{suffix}",
        "BOUNCEWATCH_TOPIC_ALERTS": f"alerts-{suffix}",
        "BOUNCEWATCH_TOPIC_SILENCES": f"silences-{suffix}",
        "BOUNCEWATCH_TOPIC_PARTITIONS": "4",
        "BOUNCEWATCH_INPUT_FORMAT": "kumomta",
        "BOUNCEWATCH_EVALUATION_INTERVAL": "1",
        "BOUNCEWATCH_INSTANCE_ID": "eo-worker",
        "BOUNCEWATCH_INGEST_IDLE_SECONDS": "5",
    }
    create_topics(bootstrap, env)
    records = feed()
    backtest = replayed(records, tmp_path)
    want = transition_keys(t.model_dump(mode="json") for t in backtest.result.transitions)
    assert len(want) >= 5
    messages = as_messages(records)

    # The feed arrives over about 20 s in slices, while the worker is killed and restarted.
    producer = threading.Thread(
        target=produce_in_slices,
        args=(bootstrap, env["BOUNCEWATCH_TOPIC_INPUT"], messages, 1),
        daemon=True,
    )
    rng = random.Random(2026)
    port = WorkerProcess(env, tmp_path).web_port  # one address for every restart
    alerts = TopicReader(bootstrap, env["BOUNCEWATCH_TOPIC_ALERTS"])
    worker: WorkerProcess | None = None
    try:
        producer.start()
        for kill in range(KILLS):
            worker = WorkerProcess({**env, "BOUNCEWATCH_WEB_PORT": str(port)}, tmp_path, f"w{kill}")
            worker.web_port = port
            worker.start()
            worker.wait_ready(timeout=120)
            # Anywhere: mid-batch, between sending and committing, mid-merge, idle.
            time.sleep(rng.uniform(0.2, 3.0))
            worker.kill()
        producer.join(timeout=120)
        worker = WorkerProcess({**env, "BOUNCEWATCH_WEB_PORT": str(port)}, tmp_path, "last")
        worker.web_port = port
        worker.start()
        worker.wait_ready(timeout=120)
        # The broker crashes under the running worker and comes back 30 s later.
        broker.outage(30)
        got = alerts.wait_for(lambda r: len(r) >= len(want), timeout=300, settle=10)
        published = [json.loads(r.value) for r in got]
        unique = {(t["fingerprint"], t["sequence"]): t for t in published}
        assert transition_keys(unique.values()) == want, worker.tail(40)
        # Every bucket the replay holds, with the same counts: nothing lost, nothing twice.
        expected = {
            f"{key}@{start}": counts_without_samples(counts.to_dict())
            for key, kb in backtest.table.items()
            for start, counts in kb.buckets.items()
        }
        # The replay of a finished file evaluates one bucket further than the live worker,
        # which stops at the closing event's time, and so has pruned a minute or two more:
        # buckets older than its oldest are left out.
        oldest = min(start for kb in backtest.table.values() for start in kb.buckets)
        deadline = time.monotonic() + 60
        stored: dict[str, Any] = {}
        while time.monotonic() < deadline:
            stored = {
                name: counts
                for name, counts in buckets_in_changelog(
                    bootstrap, env["BOUNCEWATCH_APP_ID"]
                ).items()
                if int(name.rpartition("@")[2]) >= oldest
            }
            if stored == expected:
                break
            time.sleep(2)
        differ = sorted(
            k for k in expected.keys() | stored.keys() if expected.get(k) != stored.get(k)
        )
        assert stored == expected, f"{len(differ)} buckets differ, e.g. {differ[:5]}"
        print(
            f"\nexactly once: {KILLS} SIGKILLs and a 30 s broker outage; {len(expected)} buckets"
            f" and {len(want)} transitions equal to replay"
        )
    finally:
        alerts.close()
        if worker is not None:
            worker.stop()
